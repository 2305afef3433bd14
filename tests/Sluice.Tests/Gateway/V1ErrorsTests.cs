using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Gateway;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Gateway;

/// <summary>
/// Every <c>/v1</c> answer that is an error is in OpenAI's shape and carries <c>x-request-id</c>: unknown paths, wrong
/// methods, text that is not text anywhere in a JSON body, failures outside the pipeline, missing and invalid keys.
/// </summary>
public sealed class V1ErrorsTests
{
    [Fact]
    public async Task Unknown_paths_and_wrong_methods_under_v1_are_OpenAI_shaped_404s_and_405s_while_api_keeps_ProblemDetails()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, _, key) = await TenantAsync(sluice);
        using var client = sluice.WithKey(key);
        using var anonymous = sluice.Anonymous();

        var unknown = new (HttpClient Client, HttpMethod Method, string Path)[]
        {
            (client, HttpMethod.Post, "/v1/chat/completion"),
            (client, HttpMethod.Get, "/v1/nope"),
            (anonymous, HttpMethod.Get, "/v1/nope"),
            (client, HttpMethod.Post, "/v1/responses/x/y/z"),
            (client, HttpMethod.Get, "/v1"),
        };
        foreach (var (caller, method, path) in unknown)
        {
            using var request = new HttpRequestMessage(method, path) { Content = method == HttpMethod.Post ? Json("{}") : null };
            var answer = await caller.SendAsync(request);
            var error = await ErrorAsync(answer, HttpStatusCode.NotFound);
            Assert.Equal($"Invalid URL ({method} {path})", error.GetProperty("message").GetString());
            Assert.Equal("unknown_url", error.GetProperty("code").GetString());
            Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
        }

        var wrongMethods = new (HttpMethod Method, string Path, string Allow)[]
        {
            (HttpMethod.Get, "/v1/chat/completions", "POST"),
            (HttpMethod.Put, "/v1/embeddings", "POST"),
            (HttpMethod.Delete, "/v1/models", "GET"),
            (HttpMethod.Patch, "/v1/batches", "GET, POST"),
        };
        foreach (var (method, path, allow) in wrongMethods)
        {
            var answer = await client.SendAsync(new HttpRequestMessage(method, path));
            var error = await ErrorAsync(answer, HttpStatusCode.MethodNotAllowed);
            Assert.Equal("method_not_allowed", error.GetProperty("code").GetString());
            Assert.Equal(allow.Split(", ").Order(), answer.Content.Headers.Allow.Order());
        }

        var (owner, _, _) = await TenantAsync(sluice, "other@example.com");
        var api = await owner.GetAsync("/api/v1/nope");
        Assert.Equal(HttpStatusCode.NotFound, api.StatusCode);
        Assert.Equal("application/problem+json", api.Content.Headers.ContentType?.MediaType);
        Assert.True(api.Headers.Contains("x-request-id"));
    }

    [Fact]
    public async Task Text_that_is_not_text_anywhere_in_a_JSON_body_is_a_400_invalid_encoding_on_every_v1_path_never_a_500()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, _, key) = await TenantAsync(sluice, "tenant@example.com", "inference", "batch");
        using var client = sluice.WithKey(key);
        var file = await UploadBatchFileAsync(client, """{"custom_id":"1","method":"POST","url":"/v1/chat/completions","body":{"model":"echo","messages":[{"role":"user","content":"hi"}]}}""");

        var bodies = new (string Path, byte[] Body)[]
        {
            // Escaped lone surrogates deep in nested fields: content parts, tool arguments, property names, arrays.
            ("/v1/chat/completions", """{"model":"echo","messages":[{"role":"user","content":[{"type":"text","text":"a \ud800 b"}]}]}"""u8.ToArray()),
            ("/v1/chat/completions", """{"model":"echo","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"x\":\"\udfff\"}"}}]},{"role":"user","content":"hi"}]}"""u8.ToArray()),
            ("/v1/chat/completions", """{"model":"echo","messages":[{"role":"user","content":"hi"}],"metadata":{"\ud800":"v"}}"""u8.ToArray()),
            ("/v1/chat/completions", """{"model":"echo","messages":[{"role":"user","content":"hi"}],"stream":true,"tools":[{"type":"function","function":{"name":"f","parameters":{"enum":["\udc00"]}}}]}"""u8.ToArray()),
            ("/v1/completions", """{"model":"echo","prompt":["ok","\ud83d"]}"""u8.ToArray()),
            ("/v1/embeddings", """{"model":"echo","input":["fine","\ud800\ud800"]}"""u8.ToArray()),
            ("/v1/embeddings", """{"model":"echo","input":"x","user":"\udbff"}"""u8.ToArray()),
            ("/v1/batches", Encoding.UTF8.GetBytes($$$"""{"input_file_id":"{{{file}}}","endpoint":"/v1/chat/completions","completion_window":"24h","metadata":{"k":"\ud800"}}""")),
            ("/v1/batches", Encoding.UTF8.GetBytes($$$"""{"input_file_id":"{{{file}}}","endpoint":"/v1/chat/completions","completion_window":"24h","metadata":{"\udc00":"v"}}""")),

            // Raw bytes that are not UTF-8.
            ("/v1/embeddings", [.. "{\"model\":\"echo\",\"input\":\"a"u8, 0xED, 0xA0, 0x80, .. "\"}"u8]), // an encoded surrogate
            ("/v1/completions", [.. "{\"model\":\"echo\",\"prompt\":\""u8, 0xC0, 0xAF, .. "\"}"u8]), // overlong
            ("/v1/batches", [.. "{\"input_file_id\":\""u8, 0xFF, .. "\",\"endpoint\":\"/v1/chat/completions\",\"completion_window\":\"24h\"}"u8]),
        };

        foreach (var (path, body) in bodies)
        {
            var content = new ByteArrayContent(body);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            var answer = await client.PostAsync(path, content);
            var text = await answer.Content.ReadAsStringAsync();
            Assert.True(answer.StatusCode == HttpStatusCode.BadRequest, $"{path} {Encoding.UTF8.GetString(body)}: {(int)answer.StatusCode} {text}");
            var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
            Assert.Equal("invalid_encoding", error.GetProperty("code").GetString());
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
            Assert.True(answer.Headers.Contains("x-request-id"));
        }

        // Inference calls were metered as the 400s they were, none as a success.
        var usage = await UsageAsync(database, 9);
        Assert.Equal(9, usage.Count);
        Assert.All(usage, u => Assert.Equal(400, u.Status));
        Assert.DoesNotContain(sluice.Logs.Lines, line => line.StartsWith("Error ", StringComparison.Ordinal) || line.StartsWith("Critical ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_failure_outside_the_pipeline_on_v1_is_an_OpenAI_shaped_500_with_a_request_id()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        await using var broken = sluice.WithWebHostBuilder(builder => builder.ConfigureTestServices(services =>
            services.AddSingleton<IOrganizationModels, ThrowingOrganizationModels>()));
        var (_, _, key) = await TenantAsync(sluice);
        using var client = broken.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);

        var answer = await client.GetAsync("/v1/models"); // an endpoint of its own, not the inference pipeline

        var error = await ErrorAsync(answer, HttpStatusCode.InternalServerError);
        Assert.Equal("server_error", error.GetProperty("type").GetString());
        Assert.DoesNotContain("a bug", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_key_is_told_how_to_send_one_and_an_invalid_key_that_it_is_invalid_on_every_v1_path()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (owner, _, _) = await TenantAsync(sluice); // signed in: a session cookie is no key
        using var anonymous = sluice.Anonymous();
        var forged = "sk-sluice-" + new string('Q', 38);
        using var wrongKey = sluice.WithKey(forged);
        var calls = new (HttpMethod Method, string Path)[]
        {
            (HttpMethod.Post, "/v1/chat/completions"), (HttpMethod.Post, "/v1/completions"), (HttpMethod.Post, "/v1/embeddings"),
            (HttpMethod.Get, "/v1/models"), (HttpMethod.Get, "/v1/models/echo"), (HttpMethod.Get, "/v1/files"), (HttpMethod.Post, "/v1/files"),
            (HttpMethod.Get, "/v1/batches"), (HttpMethod.Post, "/v1/batches"), (HttpMethod.Get, "/v1/batches/batch_x"),
        };

        foreach (var (method, path) in calls)
        {
            foreach (var caller in new[] { anonymous, owner })
            {
                var missing = await ErrorAsync(await caller.SendAsync(new HttpRequestMessage(method, path) { Content = Json("{}") }), HttpStatusCode.Unauthorized);
                var message = missing.GetProperty("message").GetString()!;
                Assert.StartsWith("You didn't provide an API key.", message, StringComparison.Ordinal);
                Assert.Contains("Authorization: Bearer", message, StringComparison.Ordinal);
                Assert.DoesNotContain("sign", message, StringComparison.OrdinalIgnoreCase);
                Assert.Equal("invalid_api_key", missing.GetProperty("code").GetString());
            }

            var invalid = await ErrorAsync(await wrongKey.SendAsync(new HttpRequestMessage(method, path) { Content = Json("{}") }), HttpStatusCode.Unauthorized);
            Assert.StartsWith("Incorrect API key provided", invalid.GetProperty("message").GetString(), StringComparison.Ordinal);
            Assert.DoesNotContain("QQQQ", invalid.GetProperty("message").GetString(), StringComparison.Ordinal);
        }

        using var emptyBearer = sluice.Anonymous();
        emptyBearer.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", "Bearer ");
        Assert.StartsWith("You didn't provide", (await ErrorAsync(await emptyBearer.GetAsync("/v1/models"), HttpStatusCode.Unauthorized)).GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    internal static async Task<JsonElement> ErrorAsync(HttpResponseMessage answer, HttpStatusCode status)
    {
        var text = await answer.Content.ReadAsStringAsync();
        Assert.True(answer.StatusCode == status, $"{answer.RequestMessage?.Method} {answer.RequestMessage?.RequestUri}: expected {(int)status}, got {(int)answer.StatusCode} {text}");
        Assert.Equal("application/json", answer.Content.Headers.ContentType?.MediaType);
        Assert.Matches("^req_[0-9a-f]{32}$", Assert.Single(answer.Headers.GetValues("x-request-id")));
        using var document = JsonDocument.Parse(text);
        var error = document.RootElement.GetProperty("error").Clone();
        foreach (var field in new[] { "message", "type", "param", "code" })
        {
            Assert.True(error.TryGetProperty(field, out _), $"no error.{field}: {text}");
        }

        return error;
    }

    private static async Task<string> UploadBatchFileAsync(HttpClient client, string line)
    {
        using var form = new MultipartFormDataContent
        {
            { new StringContent("batch"), "purpose" },
            { new ByteArrayContent(Encoding.UTF8.GetBytes(line + "\n")), "file", "batch.jsonl" },
        };
        var uploaded = await client.PostAsync("/v1/files", form);
        Assert.True(uploaded.StatusCode == HttpStatusCode.OK, await uploaded.Content.ReadAsStringAsync());
        return (await uploaded.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    private sealed class ThrowingOrganizationModels : IOrganizationModels
    {
        public ModelInfo? FindOwn(Guid organizationId, string model) => throw new InvalidOperationException("a bug");

        public ModelInfo? FindPublished(string model) => throw new InvalidOperationException("a bug");

        public IEnumerable<ModelInfo> Own(Guid organizationId) => throw new InvalidOperationException("a bug");

        public IEnumerable<ModelInfo> Published() => throw new InvalidOperationException("a bug");
    }

    [Fact]
    public async Task A_failed_authorization_on_a_v1_endpoint_without_an_api_key_requirement_keeps_its_401_and_never_calls_next()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var handler = new Sluice.Identity.ProblemAuthorizationResultHandler(sluice.Services.GetRequiredService<Microsoft.AspNetCore.Http.IProblemDetailsService>());
        var context = new Microsoft.AspNetCore.Http.DefaultHttpContext { RequestServices = sluice.Services };
        context.Request.Path = "/v1/some-future-endpoint";
        context.Response.Body = new MemoryStream();
        context.SetEndpoint(new Microsoft.AspNetCore.Http.Endpoint(_ => Task.CompletedTask, new Microsoft.AspNetCore.Http.EndpointMetadataCollection(), "a /v1 endpoint on another scheme"));
        var called = false;
        var policy = new Microsoft.AspNetCore.Authorization.AuthorizationPolicyBuilder().RequireAuthenticatedUser().Build();

        await handler.HandleAsync(_ => { called = true; return Task.CompletedTask; }, context, policy, Microsoft.AspNetCore.Authorization.Policy.PolicyAuthorizationResult.Challenge());

        Assert.False(called); // before: a failed authorization on /v1 went on to the endpoint (fail open)
        Assert.Equal(401, context.Response.StatusCode);
    }
}
