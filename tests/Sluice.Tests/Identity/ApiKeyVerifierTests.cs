using Microsoft.Extensions.DependencyInjection;
using Sluice.Identity;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Identity;

public sealed class ApiKeyVerifierTests
{
    [Fact]
    public async Task A_verified_key_is_served_from_memory_until_it_is_evicted()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner);
        var (keyId, key) = await SluiceFactory.CreateKeyAsync(owner, orgId);
        var verifier = sluice.Services.GetRequiredService<ApiKeyVerifier>();

        Assert.Equal((keyId, orgId), Verified(await verifier.VerifyAsync(key)));
        // Remove the row behind the application's back: only the cache can still vouch for the key.
        await database.ExecuteAsync("DELETE FROM api_keys");
        var cached = await verifier.VerifyAsync(key);
        verifier.Evict(keyId);
        var afterEviction = await verifier.VerifyAsync(key);

        Assert.NotNull(cached);
        Assert.Equal(orgId, cached.OrganizationId);
        Assert.Null(afterEviction);
    }

    [Fact]
    public async Task Malformed_keys_are_rejected_without_touching_the_database()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        sluice.CreateClient().Dispose();
        var verifier = sluice.Services.GetRequiredService<ApiKeyVerifier>();
        await database.ExecuteAsync("DROP TABLE api_keys");

        Assert.Null(await verifier.VerifyAsync("sk-sluice-not-a-real-key"));
        Assert.Null(await verifier.VerifyAsync(ApiKeyFormat.Generate()[..^1] + "!"));
        await Assert.ThrowsAnyAsync<Exception>(async () => await verifier.VerifyAsync(ApiKeyFormat.Generate()));
    }

    [Fact]
    public async Task Expiry_and_the_end_of_a_rotation_grace_period_apply_to_cached_keys()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        // A cache TTL longer than the clock moves, so it is the expiry itself that must end the cached verification.
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Identity:KeyCacheTtl"] = "00:10:00" }, clock);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner);
        var verifier = sluice.Services.GetRequiredService<ApiKeyVerifier>();
        var keys = sluice.Services.CreateScope().ServiceProvider.GetRequiredService<ApiKeyService>();

        var expiring = await keys.CreateAsync(orgId, new CreateKeyRequest("short-lived", null, null, clock.GetUtcNow().AddMinutes(5), null, null, null), null, default);
        var rotating = await keys.CreateAsync(orgId, new CreateKeyRequest("rotating", null, null, null, null, null, null), null, default);
        Assert.Equal(expiring.Details.Id, (await verifier.VerifyAsync(expiring.Key))?.KeyId);
        Assert.Equal(rotating.Details.Id, (await verifier.VerifyAsync(rotating.Key))?.KeyId);

        var rotated = await keys.RotateAsync(orgId, rotating.Details.Id, new RotateKeyRequest(120), new Caller(null, true, null, null, KeyScopes.None), OrgRole.Owner, default);
        Assert.Equal(rotating.Details.Id, (await verifier.VerifyAsync(rotating.Key))?.KeyId); // the old secret, within its grace
        Assert.Equal(rotated.Details.Id, (await verifier.VerifyAsync(rotated.Key))?.KeyId);

        clock.Advance(TimeSpan.FromMinutes(6));

        Assert.Null(await verifier.VerifyAsync(expiring.Key));
        Assert.Null(await verifier.VerifyAsync(rotating.Key));
        Assert.Equal(rotated.Details.Id, (await verifier.VerifyAsync(rotated.Key))?.KeyId);
    }

    private static (Guid KeyId, Guid OrganizationId)? Verified(VerifiedKey? key) => key is null ? null : (key.KeyId, key.OrganizationId);
}

/// <summary>Forged keys cost bounded bcrypt work: a prefix's failure budget, and fingerprints of secrets verified before.</summary>
public sealed class ForgedKeyBudgetTests
{
    [Fact]
    public async Task Forged_keys_with_a_real_prefix_cost_bcrypt_only_up_to_the_prefix_budget_and_the_real_key_keeps_verifying()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>
        {
            ["Identity:KeyCacheTtl"] = "00:00:10",
            ["Identity:KeyFailuresPerPrefix"] = "5",
            ["Identity:KeyFailureWindow"] = "00:01:00",
        }, clock);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner);
        var (_, key) = await SluiceFactory.CreateKeyAsync(owner, orgId);
        var verifier = sluice.Services.GetRequiredService<ApiKeyVerifier>();
        Assert.NotNull(await verifier.VerifyAsync(key));

        string Forged() => ApiKeyFormat.WithChecksum(key[10..18] + System.Security.Cryptography.RandomNumberGenerator.GetString("0123456789abcdefXYZ", 24));
        for (var i = 0; i < 40; i++)
        {
            Assert.Null(await verifier.VerifyAsync(Forged()));
        }

        Assert.Equal(35, verifier.RefusedWithoutHash); // 5 cost a bcrypt each, the other 35 none

        // The cached verification expires while the prefix is exhausted: the real key is recognised by its fingerprint.
        clock.Advance(TimeSpan.FromSeconds(11));
        Assert.NotNull(await verifier.VerifyAsync(key));
        Assert.Equal(35, verifier.RefusedWithoutHash);

        // Keys of any other shape never reach bcrypt: no row has their prefix.
        for (var i = 0; i < 20; i++)
        {
            Assert.Null(await verifier.VerifyAsync(ApiKeyFormat.Generate()));
        }

        Assert.Equal(35, verifier.RefusedWithoutHash);

        // The budget comes back with the window.
        clock.Advance(TimeSpan.FromMinutes(1));
        Assert.Null(await verifier.VerifyAsync(Forged()));
        Assert.Equal(35, verifier.RefusedWithoutHash);
    }

    [Fact]
    public async Task Minted_keys_with_unknown_prefixes_cost_no_database_read_past_a_small_budget_and_real_keys_still_verify()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner);
        var (_, used) = await SluiceFactory.CreateKeyAsync(owner, orgId);
        var (_, neverUsed) = await SluiceFactory.CreateKeyAsync(owner, orgId);
        var verifier = sluice.Services.GetRequiredService<ApiKeyVerifier>();
        Assert.NotNull(await verifier.VerifyAsync(used));

        // Well-formed keys with random prefixes (CRC-32 checksums can be minted by anyone): only the unknown-prefix
        // budget (a burst of twice the rate, refilled at the rate) reaches the database; the rest are refused without.
        const int Minted = 300;
        var started = System.Diagnostics.Stopwatch.StartNew();
        for (var i = 0; i < Minted; i++)
        {
            Assert.Null(await verifier.VerifyAsync(ApiKeyFormat.Generate()));
        }

        var mayHaveRead = (KnownKeyPrefixes.UnknownReadsPerSecond * 2) + (int)Math.Ceiling(started.Elapsed.TotalSeconds * KnownKeyPrefixes.UnknownReadsPerSecond) + 1;
        Assert.InRange(verifier.RefusedWithoutHash, Minted - mayHaveRead, Minted);

        // A real key this replica never saw is known by its prefix, so it is read and verified although the budget is spent.
        var refused = verifier.RefusedWithoutHash;
        Assert.NotNull(await verifier.VerifyAsync(neverUsed));
        Assert.Equal(refused, verifier.RefusedWithoutHash);

        // So is a key created after the prefixes were loaded.
        var (_, created) = await SluiceFactory.CreateKeyAsync(owner, orgId);
        Assert.NotNull(await verifier.VerifyAsync(created));
    }
}
