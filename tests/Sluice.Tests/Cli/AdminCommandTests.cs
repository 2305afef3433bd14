using Microsoft.EntityFrameworkCore;
using Sluice.Cli;
using Sluice.Crypto;
using Sluice.Identity;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Cli;

/// <summary>`sluice orgs …` and `sluice keys …` as an operator runs them on the server.</summary>
public sealed class AdminCommandTests
{
    [Fact]
    public async Task An_operator_creates_an_organization_and_manages_its_keys_from_the_command_line()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        string[] Db(params string[] args) => [.. args, "--database", database.ConnectionString];

        var (created, createdOut, createdErr) = await SluiceProcess.RunAsync(Db("orgs", "create", "--name", "Acme Labs", "--billing-email", "billing@acme.test"));
        Assert.True(created == ExitCodes.Success, createdErr);
        var orgId = Guid.Parse(createdOut.Split(' ')[2]);
        var (_, listOut, _) = await SluiceProcess.RunAsync(Db("orgs", "list"));
        Assert.Contains($"{orgId}", listOut, StringComparison.Ordinal);
        Assert.Contains("Acme Labs", listOut, StringComparison.Ordinal);

        var (keyCreated, keyOut, keyErr) = await SluiceProcess.RunAsync(Db("keys", "create", "--org", orgId.ToString(), "--name", "batch-runner", "--scope", "batch", "--model", "echo", "--rpm", "30"));
        Assert.True(keyCreated == ExitCodes.Success, keyErr);
        var secret = keyOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Last();
        Assert.True(ApiKeyFormat.IsWellFormed(secret));
        await using (var db = database.CreateContext())
        {
            var key = await db.ApiKeys.SingleAsync();
            Assert.True(Bcrypt.Verify(secret, key.SecretHash));
            Assert.Equal(KeyScopes.Batch, key.Scopes);
            Assert.Equal("echo", key.AllowedModels);
            Assert.Equal(30, key.RequestsPerMinute);
        }

        var keyId = (await ListedKeyIdAsync(database)).ToString();
        var (_, listed, _) = await SluiceProcess.RunAsync(Db("keys", "list", "--org", orgId.ToString()));
        Assert.Contains(secret[..18], listed, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, listed, StringComparison.Ordinal);

        var (rotatedCode, rotatedOut, _) = await SluiceProcess.RunAsync(Db("keys", "rotate", keyId, "--grace-seconds", "600"));
        var newSecret = rotatedOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Last();
        Assert.Equal(ExitCodes.Success, rotatedCode);
        Assert.NotEqual(secret, newSecret);
        Assert.True(ApiKeyFormat.IsWellFormed(newSecret));

        var (revoked, revokedOut, _) = await SluiceProcess.RunAsync(Db("keys", "revoke", keyId));
        Assert.Equal(ExitCodes.Success, revoked);
        Assert.Contains("Revoked", revokedOut, StringComparison.Ordinal);
        await using (var db = database.CreateContext())
        {
            Assert.InRange((await db.ApiKeys.SingleAsync()).RevokedAt ?? DateTimeOffset.MinValue, DateTimeOffset.UtcNow.AddMinutes(-2), DateTimeOffset.UtcNow); // revoked now, not at some other time
            var audited = await db.AuditEntries.Where(e => e.Actor == "cli").OrderBy(e => e.Seq).Select(e => e.Action).ToListAsync();
            Assert.Equal(["org.create", "key.create", "key.rotate", "key.revoke"], audited);
        }
    }

    [Theory]
    [InlineData("keys", "create", "--org", "00000000-0000-0000-0000-000000000001", "--name", "k")]
    [InlineData("keys", "revoke", "00000000-0000-0000-0000-000000000001")]
    [InlineData("orgs", "create", "--name", "X", "--owner", "nobody@example.com")]
    public async Task Unknown_ids_and_accounts_fail_with_one_clear_line(params string[] arguments)
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);

        var (exitCode, _, stderr) = await SluiceProcess.RunAsync([.. arguments, "--database", database.ConnectionString]);

        Assert.Equal(ExitCodes.Failure, exitCode);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("keys", "create", "--name", "k")]
    [InlineData("keys", "revoke", "not-a-guid")]
    [InlineData("orgs", "create")]
    public async Task Missing_or_malformed_arguments_are_usage_errors(params string[] arguments)
    {
        var (exitCode, _, stderr) = await SluiceProcess.RunAsync(arguments);

        Assert.Equal(ExitCodes.Usage, exitCode);
        Assert.Contains("Usage:", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unknown_scope_names_the_field()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var (_, createdOut, _) = await SluiceProcess.RunAsync(["orgs", "create", "--name", "A", "--database", database.ConnectionString]);
        var orgId = createdOut.Split(' ')[2];

        var (exitCode, _, stderr) = await SluiceProcess.RunAsync(["keys", "create", "--org", orgId, "--name", "k", "--scope", "root", "--database", database.ConnectionString]);

        Assert.Equal(ExitCodes.Failure, exitCode);
        Assert.Contains("scopes:", stderr, StringComparison.Ordinal);
    }

    private static async Task<Guid> ListedKeyIdAsync(TestDatabase database)
    {
        await using var db = database.CreateContext();
        return await db.ApiKeys.Select(k => k.Id).SingleAsync();
    }
}

/// <summary>`sluice providers …` and `sluice models …`.</summary>
public sealed class CatalogCommandTests
{
    [Fact]
    public async Task An_operator_adds_a_provider_with_a_key_from_the_environment_and_routes_a_model_to_it()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        string[] Db(params string[] args) => [.. args, "--database", database.ConnectionString, "--data-dir", database.Directory];
        var env = new Dictionary<string, string?> { ["OLLAMA_KEY"] = "secret-from-env-42" };

        var (added, addedOut, addedErr) = await SluiceProcess.RunAsync(Db("providers", "add", "--name", "ollama", "--kind", "openai-compatible", "--base-url", "http://127.0.0.1:11434/v1", "--api-key-env", "OLLAMA_KEY", "--header", "X-Gateway-Token=header-secret-91"), env);
        Assert.True(added == ExitCodes.Success, addedErr);
        Assert.Contains("with an encrypted API key", addedOut, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Success, (await SluiceProcess.RunAsync(Db("models", "add", "llama3.1:8b", "--description", "Llama on Ollama"))).ExitCode);
        var (routed, routedOut, routedErr) = await SluiceProcess.RunAsync(Db("models", "route", "llama3.1:8b", "--provider", "ollama", "--upstream-model", "llama3.1:8b", "--retains-data", "false", "--trains-on-data", "false"));
        Assert.True(routed == ExitCodes.Success, routedErr);
        Assert.Contains("ollama/llama3.1:8b", routedOut, StringComparison.Ordinal);
        var (_, listed, _) = await SluiceProcess.RunAsync(Db("models", "list"));
        Assert.Contains("llama3.1:8b", listed, StringComparison.Ordinal);
        Assert.Contains("echo (test model)", listed, StringComparison.Ordinal);
        var (_, providers, _) = await SluiceProcess.RunAsync(Db("providers", "list"));
        Assert.Contains("ollama", providers, StringComparison.Ordinal);
        Assert.DoesNotContain("secret-from-env-42", providers + listed + addedOut, StringComparison.Ordinal);
        var stored = await Canary.DumpDatabaseAsync(database);
        Assert.DoesNotContain("secret-from-env-42", stored, StringComparison.Ordinal);
        Assert.DoesNotContain("header-secret-91", stored, StringComparison.Ordinal); // extra headers are sealed too

        var (inUse, _, inUseErr) = await SluiceProcess.RunAsync(Db("providers", "remove", "ollama"));
        Assert.Equal(ExitCodes.Failure, inUse);
        Assert.Contains("routes still use this provider", inUseErr, StringComparison.Ordinal);
        var (missingEnv, _, missingEnvErr) = await SluiceProcess.RunAsync(Db("providers", "add", "--name", "x", "--kind", "openai-compatible", "--base-url", "http://x/v1", "--api-key-env", "NOPE_NOT_SET"));
        Assert.Equal(ExitCodes.Failure, missingEnv);
        Assert.Contains("NOPE_NOT_SET is not set", missingEnvErr, StringComparison.Ordinal);
        var (badKind, _, _) = await SluiceProcess.RunAsync(Db("providers", "add", "--name", "x", "--kind", "mystery"));
        Assert.Equal(ExitCodes.Usage, badKind);
    }
}

/// <summary>`sluice wallet …` and `sluice prices …`.</summary>
public sealed class BillingCommandTests
{
    [Fact]
    public async Task An_operator_credits_a_wallet_once_per_idempotency_key_and_bad_amounts_change_nothing()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        string[] Db(params string[] args) => [.. args, "--database", database.ConnectionString, "--data-dir", database.Directory];
        var (_, createdOut, _) = await SluiceProcess.RunAsync(Db("orgs", "create", "--name", "Acme"));
        var orgId = createdOut.Split(' ')[2];

        var (first, firstOut, firstErr) = await SluiceProcess.RunAsync(Db("wallet", "credit", "--org", orgId, "--amount", "25.50", "--reason", "launch", "--idempotency-key", "k1"));
        var (again, _, _) = await SluiceProcess.RunAsync(Db("wallet", "credit", "--org", orgId, "--amount", "25.50", "--reason", "launch", "--idempotency-key", "k1"));
        var (reused, _, reusedErr) = await SluiceProcess.RunAsync(Db("wallet", "credit", "--org", orgId, "--amount", "30", "--reason", "launch", "--idempotency-key", "k1"));
        var (tiny, _, tinyErr) = await SluiceProcess.RunAsync(Db("wallet", "credit", "--org", orgId, "--amount", "0.0000001", "--reason", "x"));
        var (negative, _, _) = await SluiceProcess.RunAsync(Db("wallet", "credit", "--org", orgId, "--amount", "-3", "--reason", "x"));
        var (_, shown, _) = await SluiceProcess.RunAsync(Db("wallet", "show", "--org", orgId));

        Assert.True(first == ExitCodes.Success, firstErr);
        Assert.Contains("Credited 25.50", firstOut, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Success, again);
        Assert.Equal(ExitCodes.Failure, reused);
        Assert.Contains("idempotencyKey", reusedErr, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Failure, tiny);
        Assert.Contains("amountMicros", tinyErr, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Failure, negative);
        Assert.Contains("Balance 25.50 USD", shown, StringComparison.Ordinal);
    }
}
