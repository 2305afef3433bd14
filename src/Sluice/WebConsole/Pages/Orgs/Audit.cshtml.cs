using System.Globalization;
using Microsoft.AspNetCore.Mvc;
using Sluice.Audit;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages.Orgs;

/// <summary>
/// The organization's audit log (metadata only: when, who as a pseudonymous id, what, on what), filtered and paged, and
/// for one entry its inclusion proof checked against the newest signed checkpoint with <see cref="AuditVerifier"/>, the
/// verifier an outside auditor runs. Owners and admins only, as <c>GET /api/v1/audit/entries</c>.
/// </summary>
[OrgPermission(OrgAccess.OrgWrite)]
public sealed class AuditModel : OrgPage
{
    public const int PageSize = 50;

    public override string Title => "Audit log";

    public IReadOnlyList<AuditEntry> Entries { get; private set; } = [];

    public long? NextAfter { get; private set; }

    [BindProperty(SupportsGet = true)]
    public string? Action { get; set; }

    [BindProperty(SupportsGet = true)]
    public DateOnly? From { get; set; }

    [BindProperty(SupportsGet = true)]
    public DateOnly? To { get; set; }

    [BindProperty(SupportsGet = true)]
    public long? After { get; set; }

    /// <summary>The entry whose proof to show.</summary>
    [BindProperty(SupportsGet = true)]
    public long? Proof { get; set; }

    public ProofView? Checked { get; private set; }

    public async Task<IActionResult> OnGetAsync([FromServices] AuditService audit, [FromServices] CheckpointSigner signer)
    {
        foreach (var (field, day) in new[] { (nameof(From), From), (nameof(To), To) })
        {
            if (day is { Year: < 2000 or > 9000 })
            {
                ModelState.AddModelError(field, "must be a date between the years 2000 and 9000");
            }
        }

        if (From is { } from && To is { } to && to < from)
        {
            ModelState.AddModelError(nameof(To), "must be on or after the start date");
        }

        if (Action is { Length: > 100 })
        {
            ModelState.AddModelError(nameof(Action), "must be at most 100 characters");
        }

        if (ModelState.IsValid)
        {
            var start = From is { } f ? new DateTimeOffset(f.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero) : (DateTimeOffset?)null;
            var end = To is { } t ? new DateTimeOffset(t.AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero) : (DateTimeOffset?)null;
            (var entries, NextAfter) = await audit.EntriesAsync(OrgId, start, end, null, string.IsNullOrWhiteSpace(Action) ? null : Action.Trim(), After, PageSize, HttpContext.RequestAborted);
            Entries = entries;
        }

        if (Proof is { } seq)
        {
            var found = await audit.EntryProofAsync(OrgId, seq, HttpContext.RequestAborted);
            if (found is not { } proof)
            {
                return Missing();
            }

            Checked = proof.Checkpoint is null
                ? new ProofView(proof.Entry, null, null)
                : new ProofView(proof.Entry, proof.Checkpoint, AuditVerifier.VerifyEntry(proof.Entry, proof.Proof, proof.Checkpoint.Note, signer.Origin, signer.PublicKeySpki));
        }

        return Page();
    }

    /// <summary>This page's address with the filters kept and some values changed.</summary>
    public string Link(long? after = null, long? proof = null, bool first = false)
    {
        var query = new List<string>();
        void Add(string name, string? value)
        {
            if (!string.IsNullOrEmpty(value))
            {
                query.Add($"{name}={Uri.EscapeDataString(value)}");
            }
        }

        Add("action", Action);
        Add("from", From?.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
        Add("to", To?.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
        Add("after", first ? null : (after ?? After)?.ToString(CultureInfo.InvariantCulture));
        Add("proof", proof?.ToString(CultureInfo.InvariantCulture));
        return OrgPath("/audit") + (query.Count == 0 ? "" : "?" + string.Join('&', query)) + (proof is null ? "" : "#proof");
    }

    /// <summary>An entry, the checkpoint it was checked against (null: none covers it yet) and what the verifier found.</summary>
    public sealed record ProofView(AuditEntry Entry, AuditCheckpoint? Checkpoint, AuditVerifier.EntryResult? Result);
}
