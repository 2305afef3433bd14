using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Hosting;

/// <summary>
/// The management API reads small bodies only: a body over the limit is answered 413 as ProblemDetails before it is
/// read, on the endpoints anyone can reach (sign-up, sign-in, the Stripe webhook) as on every other, so a flood of huge
/// posts cannot swell the server's memory.
/// </summary>
[Collection(RealProcessLoad.Name)]
public sealed class ApiBodyLimitTests
{
    [Theory]
    [InlineData("/api/v1/auth/login")]
    [InlineData("/api/v1/auth/signup")]
    public async Task A_declared_body_over_the_limit_is_a_413_problem_before_it_is_read(string path)
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var client = sluice.Anonymous();

        var response = await client.PostAsync(path, JsonBody(65 * 1024));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains("65536 bytes", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);

        // A body under the limit is read as before.
        var small = await client.PostAsJsonAsync("/api/v1/auth/login", new { email = "nobody@example.com", password = "wrong password" });
        Assert.Equal(HttpStatusCode.Unauthorized, small.StatusCode);
    }

    [Fact]
    public async Task The_Stripe_webhook_takes_a_few_hundred_KiB_and_no_more()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var client = sluice.Anonymous();

        var fits = await client.PostAsync("/api/v1/billing/stripe/webhook", JsonBody(200 * 1024));
        var tooLarge = await client.PostAsync("/api/v1/billing/stripe/webhook", JsonBody(300 * 1024));

        Assert.Equal(HttpStatusCode.BadRequest, fits.StatusCode); // read, and refused for its signature
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLarge.StatusCode);
    }

    [Fact]
    public async Task A_hundred_parallel_28_MB_posts_leave_the_server_under_400_MB_and_serving()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var kit = new ProcessKit(database);
        await kit.RunAsync("migrate");
        var port = SluiceProcess.FreePort();
        await using var server = SluiceProcess.Start(kit.OnDatabase("serve", "--urls", $"http://127.0.0.1:{port}", "--set", "Identity:PasswordHashCost=10"));
        await server.WaitForOutputAsync("Sluice is listening", TimeSpan.FromSeconds(60));
        var baseUri = new Uri($"http://127.0.0.1:{port}");
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 200, Expect100ContinueTimeout = TimeSpan.FromSeconds(30) })
        {
            BaseAddress = baseUri,
            Timeout = TimeSpan.FromSeconds(60),
        };

        var body = Encoding.UTF8.GetBytes("{\"email\":\"" + new string('a', 28 * 1024 * 1024) + "\",\"password\":\"x\"}");
        string[] paths = ["/api/v1/auth/login", "/api/v1/auth/signup", "/api/v1/billing/stripe/webhook"];
        var outcomes = await Task.WhenAll(Enumerable.Range(0, 100).Select(async i =>
        {
            // Half ask first (Expect: 100-continue) and get the answer without sending the body; half just send it.
            var asksFirst = i % 2 == 0;
            using var request = new HttpRequestMessage(HttpMethod.Post, paths[i % paths.Length]) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
            request.Headers.ExpectContinue = asksFirst;
            try
            {
                return (asksFirst, (int)(await http.SendAsync(request)).StatusCode);
            }
            catch (HttpRequestException)
            {
                return (asksFirst, 0); // the server answered and closed while the body was still being sent
            }
        }));

        // A chunked body (no declared length) is cut off when it passes the limit.
        using var chunked = new StreamContent(new NonSeekable(JsonBody(1024 * 1024).ReadAsStream()));
        chunked.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        var cut = await http.PostAsync("/api/v1/auth/login", chunked);

        var rssMb = ResidentMegabytes(server.Id);
        Assert.All(outcomes, o => Assert.True(o.Item2 == 413 || (!o.Item1 && o.Item2 == 0), $"a 28 MB post was answered {o.Item2}"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, cut.StatusCode);
        Assert.Equal("application/problem+json", cut.Content.Headers.ContentType?.MediaType);
        Assert.True(rssMb < 400, $"the server's resident memory is {rssMb} MB after the posts");
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
    }

    private static ByteArrayContent JsonBody(int bytes)
    {
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes("{\"email\":\"" + new string('a', bytes) + "\"}"));
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        return content;
    }

    private static long ResidentMegabytes(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) / 1024;
    }

    private sealed class NonSeekable(Stream inner) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
