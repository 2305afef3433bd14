using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Sluice.Audit;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Audit;

public sealed class AuditApiTests
{
    [Fact]
    public async Task Org_admins_read_their_organization_operators_read_everything_and_nobody_else_reads_anything()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner);
        await SluiceFactory.CreateKeyAsync(owner, orgId);
        var (admin, _) = await Identity.OrganizationTests.JoinAsync(sluice, owner, orgId, "admin@example.com", "admin");
        var (member, _) = await Identity.OrganizationTests.JoinAsync(sluice, owner, orgId, "member@example.com", "member");
        var (stranger, _) = await sluice.SignUpAndLoginAsync("stranger@example.com");
        var otherOrg = await SluiceFactory.CreateOrganizationAsync(stranger, "Other");
        var (_, key) = await SluiceFactory.CreateKeyAsync(owner, orgId, "management:write");
        using var keyClient = sluice.WithKey(key);
        using var operatorClient = sluice.Anonymous();
        var (_, account, secret) = Assert.Single(sluice.Credentials.Written);
        await operatorClient.PostAsJsonAsync("/api/v1/auth/login", new { email = account, password = secret });

        var asAdmin = await admin.GetFromJsonAsync<JsonElement>($"/api/v1/audit/entries?orgId={orgId}");
        var actions = asAdmin.GetProperty("entries").EnumerateArray().Select(e => e.GetProperty("action").GetString()).ToList();
        Assert.Contains("org.create", actions);
        Assert.Contains("key.create", actions);
        Assert.All(asAdmin.GetProperty("entries").EnumerateArray(), e => Assert.Equal(orgId, e.GetProperty("organizationId").GetGuid()));
        Assert.Equal(HttpStatusCode.Forbidden, (await member.GetAsync($"/api/v1/audit/entries?orgId={orgId}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync($"/api/v1/audit/entries?orgId={otherOrg}")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await admin.GetAsync("/api/v1/audit/entries")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await keyClient.GetAsync($"/api/v1/audit/entries?orgId={orgId}")).StatusCode);

        var all = await operatorClient.GetFromJsonAsync<JsonElement>("/api/v1/audit/entries");
        Assert.Contains(all.GetProperty("entries").EnumerateArray(), e => e.GetProperty("organizationId").ValueKind == JsonValueKind.String && e.GetProperty("organizationId").GetGuid() == otherOrg);
        Assert.Contains(all.GetProperty("entries").EnumerateArray(), e => e.GetProperty("action").GetString() == "operator.bootstrap");
    }

    [Fact]
    public async Task Entries_page_by_cursor_and_filter_by_action_and_actor()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (owner, ownerId) = await sluice.SignUpAndLoginAsync("owner@example.com");
        var orgId = await SluiceFactory.CreateOrganizationAsync(owner);
        for (var i = 0; i < 5; i++)
        {
            await SluiceFactory.CreateKeyAsync(owner, orgId);
        }

        var first = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/audit/entries?orgId={orgId}&action=key.create&limit=2");
        var next = first.GetProperty("nextAfter").GetInt64();
        var second = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/audit/entries?orgId={orgId}&action=key.create&limit=2&after={next}");
        var third = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/audit/entries?orgId={orgId}&action=key.create&limit=2&after={second.GetProperty("nextAfter").GetInt64()}");
        var byActor = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/audit/entries?orgId={orgId}&actor=user:{ownerId}");

        var seqs = new[] { first, second, third }.SelectMany(p => p.GetProperty("entries").EnumerateArray().Select(e => e.GetProperty("seq").GetInt64())).ToList();
        Assert.Equal(5, seqs.Count);
        Assert.Equal(seqs.Order(), seqs);
        Assert.Equal(JsonValueKind.Null, third.GetProperty("nextAfter").ValueKind);
        Assert.Equal(6, byActor.GetProperty("entries").GetArrayLength());
        Assert.Equal(HttpStatusCode.BadRequest, (await owner.GetAsync($"/api/v1/audit/entries?orgId={orgId}&limit=5000")).StatusCode);
    }

    [Fact]
    public async Task Proofs_served_by_the_api_verify_against_the_signed_checkpoint_and_the_published_key()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (owner, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        await SluiceFactory.CreateOrganizationAsync(owner);
        var early = await AuditLogTests.CheckpointAsync(sluice);
        for (var i = 0; i < 4; i++)
        {
            await SluiceFactory.CreateOrganizationAsync(owner, $"Org {i}");
        }

        await AuditLogTests.CheckpointAsync(sluice);
        using var anonymous = sluice.Anonymous();
        var publicKey = await anonymous.GetFromJsonAsync<JsonElement>("/api/v1/audit/public-key");
        var spki = Convert.FromBase64String(publicKey.GetProperty("spki").GetString()!);
        var origin = publicKey.GetProperty("origin").GetString()!;
        var checkpoint = await owner.GetFromJsonAsync<JsonElement>("/api/v1/audit/checkpoint");

        Assert.True(CheckpointSigner.TryVerify(checkpoint.GetProperty("note").GetString()!, origin, spki, out var size, out var root, out var error), error);
        await using (var db = database.CreateContext())
        {
            Assert.Equal(await Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.CountAsync(db.AuditEntries), size);
        }

        for (var index = 0; index < size; index++)
        {
            var inclusion = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/audit/proof/inclusion?index={index}");
            Assert.True(Merkle.VerifyInclusion((ulong)index, (ulong)size, Convert.FromBase64String(inclusion.GetProperty("leafHash").GetString()!),
                inclusion.GetProperty("proof").EnumerateArray().Select(p => Convert.FromBase64String(p.GetString()!)).ToList(), root, out error), error);
        }

        var consistency = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/audit/proof/consistency?from={early.TreeSize}");
        Assert.True(Merkle.VerifyConsistency((ulong)early.TreeSize, (ulong)size,
            consistency.GetProperty("proof").EnumerateArray().Select(p => Convert.FromBase64String(p.GetString()!)).ToList(),
            Convert.FromBase64String(early.RootHash), root, out error), error);

        Assert.Equal(HttpStatusCode.BadRequest, (await owner.GetAsync("/api/v1/audit/proof/inclusion?index=99")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await owner.GetAsync("/api/v1/audit/proof/inclusion")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await owner.GetAsync("/api/v1/audit/proof/consistency?from=0")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await owner.GetAsync("/api/v1/audit/proof/consistency?from=3&to=999")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await owner.GetAsync("/api/v1/audit/proof/inclusion?index=abc")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/v1/audit/checkpoint")).StatusCode);
    }
}
