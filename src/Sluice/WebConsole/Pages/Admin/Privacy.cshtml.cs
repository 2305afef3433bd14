using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Sluice.Privacy;

namespace Sluice.WebConsole.Pages.Admin;

/// <summary>
/// The privacy-request queue (<see cref="PrivacyRequestService"/>, operators' side): requests by status, soonest due
/// first; a verified request in review (or appealed) is approved or denied with a reason. And the immediate erasure of
/// an account found to belong to a child (<see cref="AccountErasure.EraseNowAsync"/>: a reason is required, a legal
/// hold stops it). Only metadata is shown: who asked, what kind of request, when it is due.
/// </summary>
public sealed class PrivacyModel(PrivacyRequestService requests, AccountErasure erasure) : OperatorPage
{
    public static readonly IReadOnlyList<(string Value, string Label)> Statuses =
    [
        ("open", "Waiting for a decision"),
        (PrivacyRequestStatus.PendingVerification, "Pending verification"),
        (PrivacyRequestStatus.InReview, "In review"),
        (PrivacyRequestStatus.Appealed, "Appealed"),
        (PrivacyRequestStatus.Approved, "Approved"),
        (PrivacyRequestStatus.Completed, "Completed"),
        (PrivacyRequestStatus.Denied, "Denied"),
        (PrivacyRequestStatus.Cancelled, "Cancelled"),
        (PrivacyRequestStatus.VerificationFailed, "Verification failed"),
        ("all", "All"),
    ];

    public override string Title => "Privacy requests";

    public IReadOnlyList<PrivacyRequestResponse> Requests { get; private set; } = [];

    /// <summary>The email of each subject, by user id.</summary>
    public IReadOnlyDictionary<Guid, string> Subjects { get; private set; } = new Dictionary<Guid, string>();

    [BindProperty(SupportsGet = true)]
    public string Status { get; set; } = "open";

    /// <summary>The request whose decision was refused, so its reason and error show in its own row.</summary>
    public Guid? Failed { get; private set; }

    [BindProperty]
    public string? Reason { get; set; }

    [BindProperty]
    public string? EraseEmail { get; set; }

    [BindProperty]
    public string? EraseReason { get; set; }

    public bool Decidable(PrivacyRequestResponse request) =>
        request.Verified && request.Status is PrivacyRequestStatus.InReview or PrivacyRequestStatus.Appealed;

    public async Task OnGetAsync(string? done)
    {
        Notice = done switch
        {
            "approved" => "Request approved; it is being carried out.",
            "denied" => "Request denied; the requester may appeal once.",
            "erased" => "Account erased.",
            _ => null,
        };
        await LoadAsync();
    }

    public Task<IActionResult> OnPostApproveAsync(Guid requestId) =>
        DecideAsync(requestId, () => requests.ApproveAsync(requestId, new DecidePrivacyRequest(Blank(Reason)), HttpContext.RequestAborted), "approved");

    public Task<IActionResult> OnPostDenyAsync(Guid requestId) =>
        DecideAsync(requestId, () => requests.DenyAsync(requestId, new DecidePrivacyRequest(Blank(Reason)), HttpContext.RequestAborted), "denied");

    public async Task<IActionResult> OnPostEraseAsync()
    {
        var email = EraseEmail?.Trim().ToLowerInvariant();
        var userId = string.IsNullOrEmpty(email) ? null
            : await Db.Users.AsNoTracking().Where(u => u.Email == email).Select(u => (Guid?)u.Id).SingleOrDefaultAsync(HttpContext.RequestAborted);
        if (userId is null)
        {
            ModelState.AddModelError(nameof(EraseEmail), string.IsNullOrEmpty(email) ? "is required: the account's email" : "no account has this email");
        }

        if (!await TryAsync(() => erasure.EraseNowAsync(userId!.Value, Blank(EraseReason), HttpContext.RequestAborted)))
        {
            AdminForms.Remap(ModelState, ("reason", nameof(EraseReason)), ("userId", nameof(EraseEmail)));
            await LoadAsync();
            return Page();
        }

        return Redirect("/admin/privacy?done=erased");
    }

    private async Task<IActionResult> DecideAsync(Guid requestId, Func<Task> decide, string done)
    {
        if (!await TryAsync(decide))
        {
            Failed = requestId;
            AdminForms.Remap(ModelState, ("status", string.Empty));
            await LoadAsync();
            return Page();
        }

        return Redirect($"/admin/privacy?status={Uri.EscapeDataString(Status)}&done={done}");
    }

    private async Task LoadAsync()
    {
        var all = Status switch
        {
            "all" => await requests.ListAllAsync(null, HttpContext.RequestAborted),
            "open" => (await requests.ListAllAsync(null, HttpContext.RequestAborted)).Where(Decidable).ToList(),
            _ => await requests.ListAllAsync(Status, HttpContext.RequestAborted),
        };
        Requests = all;
        var ids = all.Select(r => r.SubjectUserId).Distinct().ToList();
        Subjects = await Db.Users.AsNoTracking().Where(u => ids.Contains(u.Id)).ToDictionaryAsync(u => u.Id, u => u.Email, HttpContext.RequestAborted);
    }

    private static string? Blank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
