using System.Net;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Hosting;

/// <summary>Request paths and query strings never reach the log, even when an operator turns every category up to Trace.</summary>
public sealed class RequestUrlLoggingTests
{
    [Fact]
    public async Task No_logger_category_writes_request_urls_even_at_trace()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>
        {
            ["Logging:LogLevel:Default"] = "Trace",
            ["Logging:LogLevel:Microsoft"] = "Trace",
            ["Logging:LogLevel:Microsoft.AspNetCore"] = "Trace",
            ["Logging:LogLevel:Microsoft.AspNetCore.Hosting.Diagnostics"] = "Trace",
            ["Logging:LogLevel:Microsoft.AspNetCore.Routing.Matching"] = "Trace",
            ["Logging:Sluice.Tests.TestSupport.LogCapture:LogLevel:Default"] = "Trace", // a rule naming the provider beats every other
        });
        using var client = sluice.Anonymous();

        var missing = await client.GetAsync("/api/v1/path-canary-0b7e?q=query-canary-41c2");
        var found = await client.GetAsync("/readyz?probe=query-canary-9d05");
        var models = await client.GetAsync("/v1/models/model-canary-77aa");

        Assert.Equal(HttpStatusCode.Unauthorized, missing.StatusCode); // /api/v1 needs a caller before routing says 404
        Assert.True(found.IsSuccessStatusCode || found.StatusCode == HttpStatusCode.ServiceUnavailable, found.StatusCode.ToString());
        Assert.Equal(HttpStatusCode.Unauthorized, models.StatusCode);
        var logs = sluice.Logs.All;
        Assert.Contains("Trace ", logs, StringComparison.Ordinal); // Trace is on: other categories do write at Trace
        foreach (var canary in new[] { "path-canary-0b7e", "query-canary-41c2", "query-canary-9d05", "model-canary-77aa", "/readyz" })
        {
            Assert.DoesNotContain(canary, logs, StringComparison.Ordinal);
        }
    }
}
