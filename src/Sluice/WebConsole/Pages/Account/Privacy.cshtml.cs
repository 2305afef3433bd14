using System.Text.Json;
using Microsoft.AspNetCore.Mvc;
using Sluice.Hosting;
using Sluice.Privacy;

namespace Sluice.WebConsole.Pages.Account;

/// <summary>
/// The privacy center (C30–C36): the person's consents, their privacy requests (create, verify with their password,
/// cancel, appeal a denial, download an export while it is ready) and the policy. Everything goes through the same
/// <see cref="ConsentService"/> and <see cref="PrivacyRequestService"/> as /api/v1/me/consents and /api/v1/privacy/requests.
/// </summary>
public sealed class PrivacyCenterModel : ConsolePage
{
    public static readonly IReadOnlyDictionary<string, string> TypeLabels = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        [PrivacyRequestTypes.Access] = "Access: see the data held about me",
        [PrivacyRequestTypes.Export] = "Export: a copy of my data to download",
        [PrivacyRequestTypes.Correction] = "Correction: fix my name or email",
        [PrivacyRequestTypes.Deletion] = "Deletion: close and erase my account",
        [PrivacyRequestTypes.Restriction] = "Restriction: stop optional processing",
        [PrivacyRequestTypes.Objection] = "Objection: object to one purpose",
        [PrivacyRequestTypes.OptOut] = "Opt out: of sale, sharing and targeted advertising",
    };

    public static readonly IReadOnlyDictionary<string, string> PurposeLabels = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        [ConsentPurposes.Training] = "Use my data to improve models (training)",
        [ConsentPurposes.Marketing] = "Send me product news (marketing)",
        [ConsentPurposes.Analytics] = "Product analytics about how I use the console",
    };

    public override string Title => "Privacy center";

    public IReadOnlyList<ConsentState> Consents { get; private set; } = [];

    public IReadOnlyList<PrivacyRequestResponse> Requests { get; private set; } = [];

    /// <summary>The request a refused verify or appeal was about: its row shows the errors.</summary>
    public Guid? ActiveRequestId { get; private set; }

    [BindProperty]
    public string? Type { get; set; }

    [BindProperty]
    public string? CorrectName { get; set; }

    [BindProperty]
    public string? CorrectEmail { get; set; }

    [BindProperty]
    public string? ObjectionPurpose { get; set; }

    [BindProperty]
    public string? Password { get; set; }

    [BindProperty]
    public string? Reason { get; set; }

    [BindProperty(SupportsGet = true)]
    public string? Done { get; set; }

    public async Task OnGetAsync([FromServices] ConsentService consents, [FromServices] PrivacyRequestService requests)
    {
        Notice = Done switch
        {
            "consent" => "Your choice was recorded.",
            "created" => "Request made. Confirm it is you below: enter your password to verify it.",
            "verified" => "Request verified. We answer within 30 days; its status is below.",
            "cancelled" => "Request cancelled.",
            "appealed" => "Appeal sent. The decision on it is final.",
            _ => null,
        };
        await LoadAsync(consents, requests);
    }

    public async Task<IActionResult> OnPostConsentAsync([FromServices] ConsentService consents, [FromServices] PrivacyRequestService requests, string? purpose, bool granted)
    {
        if (!await TryAsync(() => consents.RecordForUserAsync(UserId, new RecordConsentRequest(purpose, granted), ConsentService.BrowserRefusesTracking(Request), HttpContext.RequestAborted)))
        {
            MoveErrorsAbove();
            await LoadAsync(consents, requests);
            return Page();
        }

        return Redirect("/account/privacy?done=consent");
    }

    public async Task<IActionResult> OnPostCreateAsync([FromServices] ConsentService consents, [FromServices] PrivacyRequestService requests)
    {
        JsonElement? details = Type switch
        {
            PrivacyRequestTypes.Correction => JsonSerializer.SerializeToElement(new Dictionary<string, string>(
                new[] { ("name", CorrectName), ("email", CorrectEmail) }.Where(p => !string.IsNullOrWhiteSpace(p.Item2)).Select(p => KeyValuePair.Create(p.Item1, p.Item2!.Trim())))),
            PrivacyRequestTypes.Objection => JsonSerializer.SerializeToElement(new Dictionary<string, string?> { ["purpose"] = ObjectionPurpose }),
            _ => null,
        };
        if (!await TryAsync(() => requests.CreateAsync(UserId, new CreatePrivacyRequest(Type, details, null, null), HttpContext.RequestAborted)))
        {
            Rename("details.name", nameof(CorrectName));
            Rename("details.email", nameof(CorrectEmail));
            Rename("details.purpose", nameof(ObjectionPurpose));
            Rename("details", nameof(Type));
            await LoadAsync(consents, requests);
            return Page();
        }

        return Redirect("/account/privacy?done=created");
    }

    public async Task<IActionResult> OnPostVerifyAsync([FromServices] ConsentService consents, [FromServices] PrivacyRequestService requests, Guid requestId)
    {
        var password = Password;
        Password = null;
        try
        {
            if (await TryAsync(() => requests.VerifyAsync(UserId, requestId, new VerifyPrivacyRequest(password, null), HttpContext.RequestAborted)))
            {
                return Redirect("/account/privacy?done=verified");
            }
        }
        catch (ApiProblemException problem) when (problem.Status == StatusCodes.Status403Forbidden)
        {
            ModelState.AddModelError(nameof(Password), problem.Message); // too many attempts: the request is closed
        }

        Rename("code", nameof(Password));
        Rename("status", nameof(Password));
        ActiveRequestId = requestId;
        await LoadAsync(consents, requests);
        return Page();
    }

    public async Task<IActionResult> OnPostCancelAsync([FromServices] ConsentService consents, [FromServices] PrivacyRequestService requests, Guid requestId)
    {
        if (!await TryAsync(() => requests.CancelAsync(UserId, requestId, HttpContext.RequestAborted)))
        {
            MoveErrorsAbove();
            await LoadAsync(consents, requests);
            return Page();
        }

        return Redirect("/account/privacy?done=cancelled");
    }

    public async Task<IActionResult> OnPostAppealAsync([FromServices] ConsentService consents, [FromServices] PrivacyRequestService requests, Guid requestId)
    {
        if (!await TryAsync(() => requests.AppealAsync(UserId, requestId, new DecidePrivacyRequest(Reason), HttpContext.RequestAborted)))
        {
            Rename("status", nameof(Reason));
            ActiveRequestId = requestId;
            await LoadAsync(consents, requests);
            return Page();
        }

        return Redirect("/account/privacy?done=appealed");
    }

    /// <summary>The archive of a completed access or export request, to its subject only (another person's answers 404).</summary>
    public async Task<IActionResult> OnGetExportAsync([FromServices] PrivacyRequestService requests, [FromServices] SubjectExport export, Guid requestId)
    {
        PrivacyRequest request;
        try
        {
            request = await requests.ExportableAsync(UserId, requestId, HttpContext.RequestAborted);
        }
        catch (ApiProblemException problem) when (problem.Status is 409 or 410)
        {
            return StatusCode(problem.Status);
        }

        Response.ContentType = "application/json; charset=utf-8";
        Response.Headers.CacheControl = "no-store";
        Response.Headers.ContentDisposition = $"attachment; filename=\"sluice-export-{request.Id}.json\"";
        await export.WriteAsync(request.UserId, Response.Body, HttpContext.RequestAborted);
        return new EmptyResult();
    }

    public static string StatusLabel(string status) => status switch
    {
        PrivacyRequestStatus.PendingVerification => "waiting for you to verify",
        PrivacyRequestStatus.VerificationFailed => "closed: verification failed",
        PrivacyRequestStatus.InReview => "in review",
        PrivacyRequestStatus.Approved => "approved",
        PrivacyRequestStatus.Completed => "completed",
        PrivacyRequestStatus.Denied => "denied",
        PrivacyRequestStatus.Appealed => "appealed",
        PrivacyRequestStatus.Cancelled => "cancelled",
        _ => status,
    };

    public static string StatusBadge(string status) => status switch
    {
        PrivacyRequestStatus.Completed or PrivacyRequestStatus.Approved => "badge ok",
        PrivacyRequestStatus.Denied or PrivacyRequestStatus.VerificationFailed => "badge danger",
        PrivacyRequestStatus.PendingVerification or PrivacyRequestStatus.Appealed => "badge warn",
        _ => "badge",
    };

    private async Task LoadAsync(ConsentService consents, PrivacyRequestService requests)
    {
        Consents = (await consents.ForUserAsync(UserId, ConsentService.BrowserRefusesTracking(Request), HttpContext.RequestAborted)).Current;
        Requests = await requests.ListForSubjectAsync(UserId, HttpContext.RequestAborted);
    }

    private void Rename(string from, string to)
    {
        if (ModelState.TryGetValue(from, out var entry) && entry.Errors.Count > 0)
        {
            var messages = entry.Errors.Select(e => e.ErrorMessage).ToList();
            ModelState.Remove(from);
            foreach (var message in messages)
            {
                ModelState.AddModelError(to, message);
            }
        }
    }

    private void MoveErrorsAbove()
    {
        foreach (var key in ModelState.Keys.Where(k => k.Length > 0).ToList())
        {
            Rename(key, string.Empty);
        }
    }
}
