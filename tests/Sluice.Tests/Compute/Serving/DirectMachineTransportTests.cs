using System.Net;
using System.Security.Authentication;
using Sluice.Compute.Serving;
using Sluice.Tests.Agent.Serving;

namespace Sluice.Tests.Compute.Serving;

public sealed class DirectMachineTransportTests
{
    [Fact]
    public async Task The_transport_works_with_the_pinned_certificate_and_refuses_any_other()
    {
        await using var engine = await EngineStandIn.StartAsync();
        var supervisor = new StubSupervisor();
        supervisor.Ready["t"] = engine.Port;
        await using var kit = await ServingKit.StartAsync(supervisor);

        using (var pinned = await kit.SendAsync("t", "/v1/models"))
        {
            Assert.Equal(HttpStatusCode.OK, pinned.StatusCode);
        }

        // A second self-signed certificate's fingerprint: the agent's certificate no longer matches the pin.
        var (_, other) = ServingCertificates.Write(kit.DataDir, "other.p12");
        using var transport = new DirectMachineTransport(allowLoopback: true);
        foreach (var pin in new[] { other, "not-hex", "" })
        {
            var machine = kit.Machine with { MachineId = "m-" + pin, CertificateSha256 = pin };
            using var request = new HttpRequestMessage(HttpMethod.Get, MachineTransportPaths.TaskUri(machine, "t", "/v1/models"));
            var error = await Assert.ThrowsAsync<HttpRequestException>(() => transport.Invoker(machine).SendAsync(request, TestContext.Current.CancellationToken));
            Assert.IsType<AuthenticationException>(error.InnerException);
        }

        Assert.Single(engine.Requests);
    }

    [Fact]
    public async Task A_machine_that_rejoins_with_a_new_certificate_gets_a_new_pool_and_its_token_is_never_printed()
    {
        var supervisor = new StubSupervisor();
        await using var kit = await ServingKit.StartAsync(supervisor);
        using var transport = new DirectMachineTransport(allowLoopback: true);
        var first = transport.Invoker(kit.Machine);
        Assert.Same(first, transport.Invoker(kit.Machine));
        Assert.NotSame(first, transport.Invoker(kit.Machine with { CertificateSha256 = new string('0', 64) }));
        Assert.DoesNotContain(kit.Token, kit.Machine.ToString(), StringComparison.Ordinal);
        Assert.Equal(new Uri($"{kit.Endpoint.Address.GetLeftPart(UriPartial.Authority)}/tasks/a%20b/v1/models?x=1"),
            MachineTransportPaths.TaskUri(kit.Machine, "a b", "v1/models?x=1"));
    }

    [Fact]
    public async Task A_transport_that_may_not_dial_this_host_refuses_a_loopback_machine_before_any_byte_is_sent()
    {
        await using var engine = await EngineStandIn.StartAsync();
        var supervisor = new StubSupervisor();
        supervisor.Ready["t"] = engine.Port;
        await using var kit = await ServingKit.StartAsync(supervisor);
        using var transport = new DirectMachineTransport(); // Compute:AllowLoopbackServing off: the server's default

        using var request = new HttpRequestMessage(HttpMethod.Get, MachineTransportPaths.TaskUri(kit.Machine, "t", "/v1/models"));
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => transport.Invoker(kit.Machine).SendAsync(request, TestContext.Current.CancellationToken));
        Assert.Contains("serving address is refused", error.ToString(), StringComparison.Ordinal);
        Assert.Empty(engine.Requests);

        Assert.NotNull(ServingAddressPolicy.Refusal(IPAddress.Parse("169.254.169.254"), allowLoopback: true));
        Assert.NotNull(ServingAddressPolicy.Refusal(IPAddress.Parse("::ffff:127.0.0.1"), allowLoopback: false));
        Assert.Null(ServingAddressPolicy.Refusal(IPAddress.Parse("10.0.0.7"), allowLoopback: false));
    }
}
