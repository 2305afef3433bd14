using System.Net;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Audit;
using Sluice.Storage;
using Sluice.Tests.Audit;

namespace Sluice.Tests.WebConsole;

/// <summary>The audit log page: the organization's entries (metadata only), filters, paging, and each entry's proof checked server-side.</summary>
public sealed class AuditPageTests : IAsyncLifetime
{
    private ConsoleKit _kit = null!;

    public async ValueTask InitializeAsync() => _kit = await ConsoleKit.StartAsync();

    public async ValueTask DisposeAsync() => await _kit.DisposeAsync();

    [Fact]
    public async Task An_owner_reads_the_log_filters_it_and_an_entry_is_verified_against_the_signed_checkpoint_until_it_is_tampered_with()
    {
        var (owner, orgId) = await _kit.OwnerAsync("owner@example.com", "Acme");
        using var _ = owner;
        using var other = (await _kit.OwnerAsync("other@example.com", "Other")).Owner;
        await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/members"), "#invite-form", new() { ["Email"] = "x@example.com", ["Role"] = "viewer" });
        var checkpoint = await CheckpointAsync();

        var page = await owner.GetAsync($"/orgs/{orgId}/audit");
        Assert.Equal(HttpStatusCode.OK, page.Status);
        var actions = page.FindAll("main tbody tr td:nth-child(4)").Select(td => td.TextContent.Trim()).ToList();
        Assert.Contains("org.create", actions);
        Assert.Contains("invitation.create", actions);
        Assert.Equal(2, actions.Count); // the other organization's entries are not here
        Assert.DoesNotContain("x@example.com", page.Body, StringComparison.Ordinal); // metadata only: ids, not emails

        var filtered = await owner.GetAsync($"/orgs/{orgId}/audit?action=invitation.create");
        Assert.Equal(["invitation.create"], filtered.FindAll("main tbody tr td:nth-child(4)").Select(td => td.TextContent.Trim()));
        Assert.Equal("invitation.create", filtered.InputValue("Action"));
        var tomorrow = DateTime.UtcNow.AddDays(1).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);
        Assert.Contains("No entry matches.", (await owner.GetAsync($"/orgs/{orgId}/audit?from={tomorrow}")).Text());

        var seq = await _kit.InScopeAsync(db => db.AuditEntries.Where(e => e.OrganizationId == orgId && e.Action == "invitation.create").Select(e => e.Seq).SingleAsync());
        var verify = filtered.Find($"a[aria-label='Verify entry {seq}']")!.GetAttribute("href")!;
        var proof = await owner.GetAsync(verify);
        Assert.Contains("Verified", proof.Find("#proof .badge")!.TextContent);
        Assert.Contains(checkpoint.RootHash, proof.Find("#proof")!.TextContent);
        Assert.Contains(checkpoint.TreeSize.ToString(System.Globalization.CultureInfo.InvariantCulture), proof.Find("#proof")!.TextContent);
        Assert.Contains("valid", proof.Find("#proof dd .badge.ok")!.TextContent);

        await AuditTamperTests.TamperAsync(_kit.Database, $"UPDATE audit_entries SET target = 'invitation:00000000-0000-0000-0000-000000000000 as owner' WHERE seq = {seq}");
        var tampered = await owner.GetAsync(verify);
        Assert.Contains("Verification failed", tampered.Find("#proof .badge")!.TextContent);
        Assert.Contains("changed after it was signed", tampered.Find("#proof")!.TextContent);
        Assert.NotNull(tampered.Find("#proof p .badge.danger"));
        Assert.Null(tampered.Find("#proof p .badge.ok")); // the checkpoint itself is genuine (its signature badge stays valid); the entry is not

        // An entry of another organization is not found here.
        var foreign = await _kit.InScopeAsync(db => db.AuditEntries.Where(e => e.OrganizationId != orgId && e.OrganizationId != null).Select(e => e.Seq).FirstAsync());
        Assert.Equal(HttpStatusCode.NotFound, (await owner.GetAsync($"/orgs/{orgId}/audit?proof={foreign}")).Status);
    }

    [Fact]
    public async Task An_entry_no_checkpoint_covers_yet_says_so_and_a_forged_checkpoint_fails()
    {
        var (owner, orgId) = await _kit.OwnerAsync("owner@example.com", "Acme");
        using var _ = owner;
        var seq = await _kit.InScopeAsync(db => db.AuditEntries.Where(e => e.OrganizationId == orgId).Select(e => e.Seq).FirstAsync());
        var checkpoint = await CheckpointAsync();
        var forgedNote = checkpoint.Note.Replace($"\n{checkpoint.TreeSize}\n", $"\n{checkpoint.TreeSize + 1000}\n", StringComparison.Ordinal);
        await AuditTamperTests.TamperAsync(_kit.Database,
            $"INSERT INTO audit_checkpoints (tree_size, root_hash, note, created_at) VALUES ({checkpoint.TreeSize + 1000}, '{checkpoint.RootHash}', '{forgedNote.Replace("'", "''", StringComparison.Ordinal)}', {(_kit.Database.Provider == DatabaseProvider.Postgres ? "now()" : "0")})");
        var forged = await owner.GetAsync($"/orgs/{orgId}/audit?proof={seq}");
        Assert.Contains("Verification failed", forged.Find("#proof .badge")!.TextContent);
        Assert.Contains("signature", forged.Find("#proof")!.TextContent);
        Assert.NotNull(forged.Find("#proof dd .badge.danger"));
    }

    [Fact]
    public async Task The_log_pages_by_fifty_and_bad_dates_are_refused_beside_the_field()
    {
        var (owner, orgId) = await _kit.OwnerAsync("owner@example.com", "Acme");
        using var _ = owner;
        using (var scope = _kit.Sluice.Services.CreateScope())
        {
            var log = scope.ServiceProvider.GetRequiredService<AuditLog>();
            for (var i = 0; i < 60; i++)
            {
                log.Record("test.event", $"thing:{i}", orgId);
            }

            await scope.ServiceProvider.GetRequiredService<SluiceDbContext>().SaveChangesAsync();
        }

        var first = await owner.GetAsync($"/orgs/{orgId}/audit?action=test.event");
        Assert.Equal(AuditModelPageSize, first.FindAll("main tbody tr").Count);
        var next = first.FindAll("main nav a").Single(a => a.TextContent == "Next page").GetAttribute("href")!;
        Assert.Contains("action=test.event", next, StringComparison.Ordinal);
        var second = await owner.GetAsync(next);
        Assert.Equal(10, second.FindAll("main tbody tr").Count);
        Assert.DoesNotContain(second.FindAll("main nav a"), a => a.TextContent == "Next page");

        var refused = await owner.GetAsync($"/orgs/{orgId}/audit?from=2026-05-10&to=2026-05-01");
        Assert.NotEmpty(refused.FieldError("To"));
        Assert.Equal("2026-05-01", refused.InputValue("To"));

        var farFuture = await owner.GetAsync($"/orgs/{orgId}/audit?to=9999-12-31");
        Assert.Equal(System.Net.HttpStatusCode.OK, farFuture.Status);
        Assert.NotEmpty(farFuture.FieldError("To"));
    }

    [Fact]
    public async Task Only_owners_and_admins_read_the_log_a_member_gets_a_403_page_and_no_menu_entry_a_stranger_a_404()
    {
        var (owner, orgId) = await _kit.OwnerAsync("owner@example.com", "Acme");
        using var _ = owner;
        using var admin = await _kit.AddMemberAsync(owner, orgId, "admin@example.com", "admin");
        using var member = await _kit.AddMemberAsync(owner, orgId, "member@example.com", "member");
        using var billing = await _kit.AddMemberAsync(owner, orgId, "billing@example.com", "billing");
        using var stranger = await _kit.SignUpAsync("stranger@example.com");

        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync($"/orgs/{orgId}/audit")).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await member.GetAsync($"/orgs/{orgId}/audit")).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await billing.GetAsync($"/orgs/{orgId}/audit")).Status);
        Assert.Null((await member.GetAsync($"/orgs/{orgId}")).Find($"nav a[href='/orgs/{orgId}/audit']"));
        Assert.NotNull((await admin.GetAsync($"/orgs/{orgId}")).Find($"nav a[href='/orgs/{orgId}/audit']"));
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/orgs/{orgId}/audit")).Status);
    }

    private const int AuditModelPageSize = Sluice.WebConsole.Pages.Orgs.AuditModel.PageSize;

    private async Task<AuditCheckpoint> CheckpointAsync()
    {
        using var scope = _kit.Sluice.Services.CreateScope();
        return (await scope.ServiceProvider.GetRequiredService<AuditService>().CheckpointAsync(CancellationToken.None))!;
    }
}
