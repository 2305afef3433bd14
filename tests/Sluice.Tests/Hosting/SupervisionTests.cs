using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Sluice.Hosting;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Hosting;

/// <summary>A background loop that crashes never stops the host: it is restarted with backoff, logged and shown in /readyz.</summary>
public sealed class SupervisionTests
{
    [Fact]
    public async Task A_crashing_background_loop_is_restarted_shown_in_readyz_and_cleared_once_it_recovers()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var loop = new Probe();
        await using var host = sluice.WithWebHostBuilder(builder => builder.ConfigureTestServices(services =>
            services.AddSingleton<IHostedService>(provider => new CrashingLoop(loop, provider.GetRequiredService<BackgroundHealth>()))));
        using var client = host.CreateClient();

        await loop.Runs(3).WaitAsync(TimeSpan.FromSeconds(30)); // crashed twice, restarted twice
        var degraded = await ReadyAsync(client);
        Assert.Equal("degraded", degraded.Status);
        Assert.Contains("CrashingLoop: crashed", degraded.Background, StringComparison.Ordinal);
        Assert.Contains("InvalidOperationException", degraded.Background, StringComparison.Ordinal);
        Assert.DoesNotContain(Probe.Secret, degraded.Background, StringComparison.Ordinal);
        Assert.Contains(sluice.Logs.Lines, l => l.Contains("CrashingLoop crashed (InvalidOperationException", StringComparison.Ordinal));
        Assert.DoesNotContain(Probe.Secret, sluice.Logs.All, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/healthz")).StatusCode);

        // The third run ends cleanly instead of crashing: the entry clears.
        loop.Release.SetResult();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while ((await ReadyAsync(client)).Status != "ok")
        {
            Assert.True(DateTime.UtcNow < deadline, "the recovered loop is cleared from /readyz");
            await Task.Delay(50);
        }

        Assert.Contains(sluice.Logs.Lines, l => l.Contains("CrashingLoop recovered", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_host_is_set_to_ignore_background_service_exceptions()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);

        // Set explicitly: the default (StopHost) is what used to take a replica down.
        var options = sluice.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<HostOptions>>().Value;
        Assert.Equal(BackgroundServiceExceptionBehavior.Ignore, options.BackgroundServiceExceptionBehavior);
    }

    private static async Task<(string Status, string Background)> ReadyAsync(HttpClient client)
    {
        using var body = JsonDocument.Parse(await client.GetStringAsync("/readyz"));
        return (body.RootElement.GetProperty("status").GetString()!,
            body.RootElement.GetProperty("checks").GetProperty("background").GetProperty("detail").GetString()!);
    }

    /// <summary>What the test watches and controls of <see cref="CrashingLoop"/>.</summary>
    private sealed class Probe
    {
        public const string Secret = "prompt text that must not leak";

        public TaskCompletionSource[] Started { get; } = [.. Enumerable.Range(0, 3).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously))];

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Runs(int count) => Started[count - 1].Task;
    }

    /// <summary>Throws (with a message that must never be shown) on its first two runs, then runs until released.</summary>
    private sealed class CrashingLoop(Probe probe, BackgroundHealth health) : SupervisedService(health)
    {
        private int _run;

        protected override string LoopName => nameof(CrashingLoop);

        protected override TimeSpan FirstBackoff => TimeSpan.FromMilliseconds(50);

        protected override TimeSpan RecoveryWindow => TimeSpan.FromHours(1);

        protected override async Task RunAsync(CancellationToken stoppingToken)
        {
            var run = ++_run;
            await Task.Yield();
            probe.Started[Math.Min(run, 3) - 1].TrySetResult();
            if (run <= 2)
            {
                throw new InvalidOperationException(Probe.Secret);
            }

            await probe.Release.Task.WaitAsync(stoppingToken);
        }
    }
}
