using System.Net;
using System.Text.Json;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Health;

public abstract class HealthEndpointTests(DatabaseProvider provider)
{
    [Fact]
    public async Task Liveness_and_readiness_are_ok_on_a_migrated_database()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        using var client = sluice.CreateClient();

        var live = await client.GetAsync("/healthz");
        var ready = await client.GetAsync("/readyz");

        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal("application/json", ready.Content.Headers.ContentType?.MediaType);
        using var body = JsonDocument.Parse(await ready.Content.ReadAsStringAsync());
        Assert.Equal("ok", body.RootElement.GetProperty("status").GetString());
        var check = body.RootElement.GetProperty("checks").GetProperty("database");
        Assert.Equal("ok", check.GetProperty("status").GetString());
        Assert.StartsWith("schema 2", check.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Readiness_fails_while_a_migration_is_pending_and_liveness_stays_ok()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        using var client = sluice.CreateClient();
        await database.ExecuteAsync("DELETE FROM \"__EFMigrationsHistory\"");

        var ready = await client.GetAsync("/readyz");
        var live = await client.GetAsync("/healthz");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        using var body = JsonDocument.Parse(await ready.Content.ReadAsStringAsync());
        Assert.Equal("failing", body.RootElement.GetProperty("status").GetString());
        Assert.Contains("pending", body.RootElement.GetProperty("checks").GetProperty("database").GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
    }

    [Fact]
    public async Task Readiness_fails_when_the_schema_is_newer_than_the_binary()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        using var client = sluice.CreateClient();
        await database.ExecuteAsync(
            "INSERT INTO \"__EFMigrationsHistory\" (\"MigrationId\", \"ProductVersion\") VALUES ('29990101000000_FromTheFuture', '99.0.0')");

        var ready = await client.GetAsync("/readyz");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Contains("newer than this binary", await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}

public sealed class SqliteHealthEndpointTests() : HealthEndpointTests(DatabaseProvider.Sqlite);

public sealed class PostgresHealthEndpointTests() : HealthEndpointTests(DatabaseProvider.Postgres);
