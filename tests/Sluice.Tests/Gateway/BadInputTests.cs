using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Gateway;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Gateway;

/// <summary>No client input yields a 5xx on /v1, usage events record the status sent, and every answer carries x-request-id.</summary>
public sealed class BadInputTests
{
    [Fact]
    public async Task Invalid_UTF8_and_lone_surrogates_are_400s_in_OpenAIs_shape_recorded_as_sent()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);
        var invalidUtf8 = new ByteArrayContent([.. "{\"model\":\"echo\",\"messages\":[{\"role\":\"user\",\"content\":\"a"u8, 0xC3, 0x28, 0xFF, .. "\"}]}"u8]);
        invalidUtf8.Headers.ContentType = new MediaTypeHeaderValue("application/json");

        var answers = new List<HttpResponseMessage>
        {
            await client.PostAsync("/v1/chat/completions", invalidUtf8),
            await client.PostAsync("/v1/chat/completions", Json("""{"model":"echo","messages":[{"role":"user","content":"lone \ud800 surrogate"}]}""")),
            await client.PostAsync("/v1/chat/completions", Json("""{"model":"echo","messages":[{"role":"user","content":"low \udc00 first"}],"stream":true}""")),
            await client.PostAsync("/v1/completions", Json("""{"model":"echo","prompt":"\ud83d"}""")),
        };

        foreach (var answer in answers)
        {
            Assert.Equal(HttpStatusCode.BadRequest, answer.StatusCode);
            var error = (await answer.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
            Assert.Equal("invalid_encoding", error.GetProperty("code").GetString());
            Assert.True(answer.Headers.Contains("x-request-id"));
        }

        Assert.All(await UsageAsync(database, answers.Count), u => Assert.Equal(400, u.Status));

        // A well-formed pair of surrogate escapes is text, and odd charsets in Content-Type change nothing.
        var pair = await client.PostAsync("/v1/chat/completions", Json("""{"model":"echo","messages":[{"role":"user","content":"ok \ud83d\ude00"}]}"""));
        Assert.Equal(HttpStatusCode.OK, pair.StatusCode);
        foreach (var charset in new[] { "ebcdic", "utf-16", "\"\"", "x;;=" })
        {
            var odd = new ByteArrayContent("""{"model":"echo","messages":[{"role":"user","content":"hi"}]}"""u8.ToArray());
            odd.Headers.TryAddWithoutValidation("Content-Type", $"application/json; charset={charset}");
            var response = await client.PostAsync("/v1/chat/completions", odd);
            Assert.True((int)response.StatusCode < 500, $"charset={charset}: {(int)response.StatusCode}");
        }
    }

    [Fact]
    public async Task An_unhandled_failure_is_a_500_with_a_request_id_and_its_usage_event_says_500()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        await using var broken = sluice.WithWebHostBuilder(builder => builder.ConfigureTestServices(services =>
        {
            // The built-in model's kind served by an upstream with a bug: the pipeline must answer and record it truthfully.
            foreach (var echo in services.Where(s => s.ServiceType == typeof(IUpstream) && s.ImplementationType?.Name == "EchoUpstream").ToList())
            {
                services.Remove(echo);
            }

            services.AddSingleton<IUpstream, ThrowingUpstream>();
        }));
        var (_, _, key) = await TenantAsync(sluice);
        using var client = broken.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);

        var response = await client.PostAsync("/v1/chat/completions", Chat("echo", "hi"));

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.StartsWith("req_", Assert.Single(response.Headers.GetValues("x-request-id")), StringComparison.Ordinal);
        Assert.Equal("server_error", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("type").GetString());
        var usage = Assert.Single(await UsageAsync(database, 1));
        Assert.Equal((500, "internal_error"), (usage.Status, usage.ErrorType));
        Assert.Equal(Assert.Single(response.Headers.GetValues("x-request-id")), usage.RequestId);
    }

    [Fact]
    public async Task Every_answer_outside_the_gateway_carries_a_request_id_too()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var anonymous = sluice.Anonymous();

        var answers = new[]
        {
            await anonymous.GetAsync("/api/v1/orgs"),
            await anonymous.GetAsync("/no/such/path"),
            await anonymous.PostAsync("/api/v1/auth/login", new StringContent("{not json", Encoding.UTF8, "application/json")),
            await anonymous.GetAsync("/healthz"),
        };

        Assert.All(answers, a => Assert.Matches("^req_[0-9a-f]{32}$", Assert.Single(a.Headers.GetValues("x-request-id"))));
        anonymous.DefaultRequestHeaders.Add("x-request-id", "client-chosen.id_1");
        Assert.Equal("client-chosen.id_1", Assert.Single((await anonymous.GetAsync("/healthz")).Headers.GetValues("x-request-id")));
    }

    private sealed class ThrowingUpstream : IUpstream
    {
        public ProviderKind Kind => ProviderKind.Echo;

        public Task<UpstreamResponse> SendAsync(InferenceRequest request, RouteInfo route, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("a bug in an upstream");
    }
}
