using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Sluice.Privacy;

namespace Sluice.WebConsole.Pages.Admin;

/// <summary>
/// Legal holds (<see cref="LegalHoldService"/>): placed on an organization, a person or a whole retention class with a
/// reason, and released with a reason; while one holds, retention sweeps and erasure skip what it covers.
/// </summary>
public sealed class LegalHoldsModel(LegalHoldService holds) : OperatorPage
{
    public override string Title => "Legal holds";

    public IReadOnlyList<LegalHoldResponse> Holds { get; private set; } = [];

    public IReadOnlyList<(Guid Id, string Name)> Organizations { get; private set; } = [];

    public IReadOnlyDictionary<Guid, string> People { get; private set; } = new Dictionary<Guid, string>();

    [BindProperty(SupportsGet = true)]
    public bool Released { get; set; }

    [BindProperty]
    public string Scope { get; set; } = "org";

    [BindProperty]
    public Guid? OrganizationId { get; set; }

    [BindProperty]
    public string? UserEmail { get; set; }

    [BindProperty]
    public string? RetentionClass { get; set; }

    [BindProperty]
    public string? Reason { get; set; }

    [BindProperty]
    public string? ReleaseReason { get; set; }

    public Guid? Failed { get; private set; }

    public string OrganizationName(Guid id) => Organizations.FirstOrDefault(o => o.Id == id).Name ?? id.ToString();

    public async Task OnGetAsync(string? done)
    {
        Notice = done switch
        {
            "placed" => "Legal hold placed.",
            "released" => "Legal hold released.",
            _ => null,
        };
        await LoadAsync();
    }

    public async Task<IActionResult> OnPostPlaceAsync()
    {
        Guid? userId = null;
        if (Scope == "user")
        {
            var email = UserEmail?.Trim().ToLowerInvariant();
            userId = string.IsNullOrEmpty(email) ? null
                : await Db.Users.AsNoTracking().Where(u => u.Email == email).Select(u => (Guid?)u.Id).SingleOrDefaultAsync(HttpContext.RequestAborted);
            if (userId is null)
            {
                ModelState.AddModelError(nameof(UserEmail), string.IsNullOrEmpty(email) ? "is required for a person's hold" : "no account has this email");
            }
        }

        if (!await TryAsync(() => holds.PlaceAsync(new PlaceHoldRequest(Scope, OrganizationId, userId, RetentionClass, Reason), HttpContext.RequestAborted)))
        {
            AdminForms.Remap(ModelState, ("userId", nameof(UserEmail)));
            await LoadAsync();
            return Page();
        }

        return Redirect("/admin/legal-holds?done=placed");
    }

    public async Task<IActionResult> OnPostReleaseAsync(Guid holdId)
    {
        if (!await TryAsync(() => holds.ReleaseAsync(holdId, new ReleaseHoldRequest(string.IsNullOrWhiteSpace(ReleaseReason) ? null : ReleaseReason.Trim()), HttpContext.RequestAborted)))
        {
            Failed = holdId;
            AdminForms.Remap(ModelState, ("reason", nameof(ReleaseReason)), ("holdId", string.Empty));
            await LoadAsync();
            return Page();
        }

        return Redirect("/admin/legal-holds?done=released");
    }

    private async Task LoadAsync()
    {
        Holds = await holds.ListAsync(Released, HttpContext.RequestAborted);
        Organizations = (await Db.Organizations.AsNoTracking().Select(o => new { o.Id, o.Name }).ToListAsync(HttpContext.RequestAborted))
            .OrderBy(o => o.Name, StringComparer.OrdinalIgnoreCase).Select(o => (o.Id, o.Name)).ToList();
        var ids = Holds.Where(h => h.UserId is not null).Select(h => h.UserId!.Value).Distinct().ToList();
        People = await Db.Users.AsNoTracking().Where(u => ids.Contains(u.Id)).ToDictionaryAsync(u => u.Id, u => u.Email, HttpContext.RequestAborted);
    }
}
