using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.TestSupport.GatewayKit;

namespace Sluice.Tests.Privacy;

/// <summary>Consent is off unless given, versioned, checked wherever content could reach training, and browser signals count.</summary>
public sealed class ConsentTests
{
    [Fact]
    public async Task Providers_that_train_on_data_are_used_only_after_the_organization_opts_in_and_never_after_it_withdraws()
    {
        await using var trains = await FakeUpstream.StartAsync();
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        await ProviderAsync(op, "trains", trains.BaseUrl);
        await ModelAsync(op, "cheap");
        await RouteAsync(op, "cheap", "trains", "c", trainsOnData: true);
        var (owner, orgId, key) = await TenantAsync(sluice);
        using var member = await sluice.AddMemberAsync(owner, orgId, "member@example.com", "member");
        using var client = sluice.WithKey(key);

        var before = await client.PostAsync("/v1/chat/completions", Chat("cheap", "hi"));
        Assert.Equal(HttpStatusCode.Forbidden, before.StatusCode);
        var error = await before.Content.ReadAsStringAsync();
        Assert.Contains("no_compliant_route", error, StringComparison.Ordinal);
        Assert.Contains("not consented", error, StringComparison.Ordinal);
        Assert.Equal(0, trains.Hits);

        Assert.Equal(HttpStatusCode.Forbidden, (await member.PutAsJsonAsync($"/api/v1/orgs/{orgId}/consents", new { purpose = "training", granted = true })).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await owner.PutAsJsonAsync($"/api/v1/orgs/{orgId}/consents", new { purpose = "marketing", granted = true })).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await owner.PutAsJsonAsync($"/api/v1/orgs/{orgId}/consents", new { purpose = "training" })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await owner.PutAsJsonAsync($"/api/v1/orgs/{orgId}/consents", new { purpose = "training", granted = true })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Chat("cheap", "hi"))).StatusCode);
        Assert.Equal(1, trains.Hits);

        // An organization that requires no-training providers is never sent to one, consent or not.
        Assert.Equal(HttpStatusCode.OK, (await owner.PatchAsJsonAsync($"/api/v1/orgs/{orgId}", new { requireNoTraining = true })).StatusCode); // applies at once
        Assert.Equal(HttpStatusCode.Forbidden, (await client.PostAsync("/v1/chat/completions", Chat("cheap", "hi"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await owner.PatchAsJsonAsync($"/api/v1/orgs/{orgId}", new { requireNoTraining = false })).StatusCode);

        var withdrawn = await owner.PutAsJsonAsync($"/api/v1/orgs/{orgId}/consents", new { purpose = "training", granted = false });
        Assert.Equal(HttpStatusCode.OK, withdrawn.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await client.PostAsync("/v1/chat/completions", Chat("cheap", "hi"))).StatusCode);
        Assert.Equal(1, trains.Hits);

        var history = (await withdrawn.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("history").EnumerateArray().ToList();
        Assert.Equal([1, 2], history.Select(h => h.GetProperty("version").GetInt32()));
        Assert.Equal([true, false], history.Select(h => h.GetProperty("granted").GetBoolean()));
        Assert.All(history, h => Assert.True(h.GetProperty("policyVersion").GetInt32() >= 1));
        await using var db = database.CreateContext();
        Assert.Equal(2, await db.ConsentRecords.CountAsync(c => c.OrganizationId == orgId));
        Assert.True(await db.AuditEntries.AnyAsync(e => e.Action == "consent.withdraw" && e.OrganizationId == orgId));
    }

    [Fact]
    public async Task A_fine_tuning_dataset_is_refused_until_the_organization_consents_to_training()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (owner, orgId, key) = await TenantAsync(sluice, scopes: "batch");
        using var client = sluice.WithKey(key);
        const string Dataset = "{\"messages\":[{\"role\":\"user\",\"content\":\"a canary-finetune-7731 line\"}]}\n";

        var refused = await BatchKit.UploadAsync(client, Dataset, purpose: "fine-tune");
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Contains("training_consent_required", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        await using (var db = database.CreateContext())
        {
            Assert.Empty(await db.Files.ToListAsync());
        }

        Assert.Empty(Directory.Exists(Path.Combine(database.Directory, "files")) ? Directory.GetFiles(Path.Combine(database.Directory, "files"), "*", SearchOption.AllDirectories) : []);
        Canary.AssertAbsent(sluice.Logs.All, "canary-finetune-7731", "the logs");

        Assert.Equal(HttpStatusCode.OK, (await owner.PutAsJsonAsync($"/api/v1/orgs/{orgId}/consents", new { purpose = "training", granted = true })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await BatchKit.UploadAsync(client, Dataset, purpose: "fine-tune")).StatusCode);
    }

    [Fact]
    public async Task Personal_consents_start_off_are_versioned_and_Do_Not_Track_and_GPC_count_as_refusal()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var op = await OperatorAsync(sluice);
        var (person, _) = await sluice.SignUpAndLoginAsync("person@example.com");

        var initial = await person.GetFromJsonAsync<JsonElement>("/api/v1/me/consents");
        Assert.All(initial.GetProperty("current").EnumerateArray(), c => Assert.False(c.GetProperty("granted").GetBoolean()));
        Assert.Equal(["training", "marketing", "analytics"], initial.GetProperty("current").EnumerateArray().Select(c => c.GetProperty("purpose").GetString()));

        using (var dnt = new HttpRequestMessage(HttpMethod.Put, "/api/v1/me/consents") { Content = JsonContent.Create(new { purpose = "analytics", granted = true }) })
        {
            dnt.Headers.Add("DNT", "1");
            Assert.Equal(HttpStatusCode.Conflict, (await person.SendAsync(dnt)).StatusCode);
        }

        Assert.Equal(HttpStatusCode.OK, (await person.PutAsJsonAsync("/api/v1/me/consents", new { purpose = "analytics", granted = true })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await person.PutAsJsonAsync("/api/v1/me/consents", new { purpose = "marketing", granted = true })).StatusCode);
        using (var gpc = new HttpRequestMessage(HttpMethod.Get, "/api/v1/me/consents"))
        {
            gpc.Headers.Add("Sec-GPC", "1");
            var state = await (await person.SendAsync(gpc)).Content.ReadFromJsonAsync<JsonElement>();
            var analytics = state.GetProperty("current").EnumerateArray().Single(c => c.GetProperty("purpose").GetString() == "analytics");
            Assert.True(analytics.GetProperty("granted").GetBoolean());
            Assert.False(analytics.GetProperty("effective").GetBoolean());
            Assert.Equal("browser_signal", analytics.GetProperty("overriddenBy").GetString());
        }

        // Restriction of processing: every optional purpose is withdrawn and stays off.
        var requestId = await PrivacyRequestTests.VerifiedRequestAsync(person, "restriction");
        Assert.Equal(HttpStatusCode.OK, (await op.PostAsJsonAsync($"/api/v1/admin/privacy/requests/{requestId}/approve", new { })).StatusCode);
        var restricted = await person.GetFromJsonAsync<JsonElement>("/api/v1/me/consents");
        Assert.All(restricted.GetProperty("current").EnumerateArray(), c => Assert.False(c.GetProperty("effective").GetBoolean()));
        Assert.Equal(2, restricted.GetProperty("current").EnumerateArray().Single(c => c.GetProperty("purpose").GetString() == "marketing").GetProperty("version").GetInt32());
        Assert.Equal(HttpStatusCode.OK, (await person.PutAsJsonAsync("/api/v1/me/consents", new { purpose = "marketing", granted = true })).StatusCode);
        var after = await person.GetFromJsonAsync<JsonElement>("/api/v1/me/consents");
        var marketing = after.GetProperty("current").EnumerateArray().Single(c => c.GetProperty("purpose").GetString() == "marketing");
        Assert.False(marketing.GetProperty("effective").GetBoolean());
        Assert.Equal("processing_restriction", marketing.GetProperty("overriddenBy").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, (await person.PutAsJsonAsync("/api/v1/me/consents", new { purpose = "selling", granted = true })).StatusCode);
    }
}
