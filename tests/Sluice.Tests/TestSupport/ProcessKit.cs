using Sluice.Cli;

namespace Sluice.Tests.TestSupport;

/// <summary>The `sluice` command line as separate processes on one test database: admin commands and servers.</summary>
public sealed class ProcessKit(TestDatabase database)
{
    public string[] OnDatabase(params string[] args) => [.. args, "--database", database.ConnectionString, "--data-dir", database.Directory];

    /// <summary>Runs an admin command and returns its output; a failure fails the test with its error.</summary>
    public async Task<string> RunAsync(params string[] args)
    {
        var (code, stdout, stderr) = await SluiceProcess.RunAsync(OnDatabase(args));
        Assert.True(code == ExitCodes.Success, $"{string.Join(' ', args)}: {stderr}");
        return stdout;
    }

    /// <summary>
    /// Migrates, then sets up an organization with a key, a provider at <paramref name="upstream"/> serving model <c>m</c>
    /// at the given prices (currency units per million tokens), and a wallet holding <paramref name="funds"/>.
    /// </summary>
    public async Task<(Guid OrgId, string Key)> PricedTenantAsync(Uri upstream, string inputPrice, string outputPrice, string funds)
    {
        await RunAsync("migrate");
        var orgId = Guid.Parse((await RunAsync("orgs", "create", "--name", "Tenant")).Split(' ')[2]);
        var key = (await RunAsync("keys", "create", "--org", orgId.ToString(), "--name", "load")).Trim().Split('\n')[^1].Trim();
        await RunAsync("providers", "add", "--name", "p", "--kind", "openai-compatible", "--base-url", upstream.ToString());
        await RunAsync("models", "add", "m");
        var routeId = (await RunAsync("models", "route", "m", "--provider", "p", "--upstream-model", "m", "--retains-data", "false", "--trains-on-data", "false")).Split(' ')[1].TrimEnd(':');
        await RunAsync("prices", "set", "--route", routeId, "--input", inputPrice, "--output", outputPrice);
        await RunAsync("wallet", "credit", "--org", orgId.ToString(), "--amount", funds, "--reason", "test funds");
        return (orgId, key);
    }
}
