using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Billing;
using Sluice.Gateway;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages.Orgs;

/// <summary>
/// The organization's API keys: the list (metadata only: a key's secret is never stored, only its prefix is shown), a
/// form to create one with every option the API has, rotation and revocation. A new or rotated secret is shown once, in
/// the answer to the post that made it.
/// </summary>
[OrgPermission(OrgAccess.KeysRead)]
public sealed class KeysModel(ApiKeyService keys, Catalog catalog, OrganizationPolicies policies, IOptions<BillingOptions> billing, TimeProvider time) : OrgPage
{
    /// <summary>The name the playground gives the keys it mints (the list marks them).</summary>
    public const string PlaygroundKeyName = "Playground (console)";

    /// <summary>The service's field names (dotted ones, and the key id of a rotation) and the form's.</summary>
    private static readonly Dictionary<string, string> FieldNames = new(StringComparer.OrdinalIgnoreCase)
    {
        ["spendLimits.dailyMicros"] = nameof(SpendLimitDaily),
        ["spendLimits.monthlyMicros"] = nameof(SpendLimitMonthly),
        ["spendLimits.totalMicros"] = nameof(SpendLimitTotal),
        ["keyId"] = string.Empty,
        ["gracePeriodSeconds"] = string.Empty,
    };

    public override string Title => "API keys";

    public string Currency => billing.Value.Currency;

    public DateTimeOffset Now => time.GetUtcNow();

    public IReadOnlyList<KeyResponse> Keys { get; private set; } = [];

    /// <summary>Who created each key, by user id (their email).</summary>
    public IReadOnlyDictionary<Guid, string> Creators { get; private set; } = new Dictionary<Guid, string>();

    /// <summary>The models the organization may call: the choices for a key's allowed models.</summary>
    public IReadOnlyList<string> AvailableModels { get; private set; } = [];

    /// <summary>The scopes the viewer's role may put on a key.</summary>
    public IReadOnlyList<string> GrantableScopes => KeyScopeNames.Format(Permissions.ScopesAllowed(Organization.Role));

    /// <summary>A secret just created or rotated: rendered in this response only.</summary>
    public CreatedKeyResponse? Created { get; private set; }

    /// <summary>"created" or "rotated", for the message beside <see cref="Created"/>.</summary>
    public string? CreatedHow { get; private set; }

    [BindProperty]
    public string? Name { get; set; }

    [BindProperty]
    public List<string> Scopes { get; set; } = [];

    [BindProperty]
    public List<string> Models { get; set; } = [];

    /// <summary>When the key stops working, in UTC (a datetime-local input); empty for never.</summary>
    [BindProperty]
    public DateTime? ExpiresAt { get; set; }

    [BindProperty]
    public int? RequestsPerMinute { get; set; }

    [BindProperty]
    public int? TokensPerMinute { get; set; }

    /// <summary>Spend limits in the wallet's currency (the service takes micro-units).</summary>
    [BindProperty]
    public decimal? SpendLimitDaily { get; set; }

    [BindProperty]
    public decimal? SpendLimitMonthly { get; set; }

    [BindProperty]
    public decimal? SpendLimitTotal { get; set; }

    /// <summary>Whether the viewer may rotate or revoke this key: owners and admins any, members the ones they created.</summary>
    public bool MayChange(KeyResponse key) =>
        Can(OrgAccess.KeysWrite) && key.RevokedAt is null
        && (Organization.Role is OrgRole.Owner or OrgRole.Admin || key.CreatedBy == UserId);

    public static bool IsPlayground(KeyResponse key) => key.Name == PlaygroundKeyName;

    public static string Status(KeyResponse key, DateTimeOffset now) => key switch
    {
        { RevokedAt: not null } => "revoked",
        { ExpiresAt: { } expires } when expires <= now => "expired",
        { PreviousSecretValidUntil: not null } => "rotating",
        _ => "active",
    };

    public async Task OnGetAsync(string? done)
    {
        Scopes = [.. GrantableScopes.Where(s => s is "inference" or "batch")];
        Notice = done switch
        {
            "revoked" => "Key revoked. Calls with it are refused from now on.",
            _ => null,
        };
        await LoadAsync();
    }

    public async Task<IActionResult> OnPostAsync()
    {
        if (!Can(OrgAccess.KeysWrite))
        {
            return Denied();
        }

        await LoadAsync();
        foreach (var model in Models.Where(m => !AvailableModels.Contains(m, StringComparer.Ordinal)))
        {
            ModelState.AddModelError(nameof(Models), $"'{(model.Length > 60 ? model[..60] + "…" : model)}' is not a model this organization may use.");
        }

        CheckSpendLimit(SpendLimitDaily, nameof(SpendLimitDaily));
        CheckSpendLimit(SpendLimitMonthly, nameof(SpendLimitMonthly));
        CheckSpendLimit(SpendLimitTotal, nameof(SpendLimitTotal));

        var request = new CreateKeyRequest(
            Name,
            Scopes,
            Models.Count == 0 ? null : Models,
            ExpiresAt is { } expires ? new DateTimeOffset(DateTime.SpecifyKind(expires, DateTimeKind.Utc)) : null,
            SpendLimitDaily is null && SpendLimitMonthly is null && SpendLimitTotal is null
                ? null
                : new SpendLimits(Micros(SpendLimitDaily), Micros(SpendLimitMonthly), Micros(SpendLimitTotal)),
            RequestsPerMinute,
            TokensPerMinute);
        var role = Organization.Role;
        CreatedKeyResponse? created = null;
        if (!await TryAsync(async () => created = await keys.CreateAsync(OrgId, request, UserId, HttpContext.RequestAborted,
                new ScopeCeiling(Permissions.ScopesAllowed(role), $"your role ({Roles.Format(role)})"))))
        {
            MapFieldErrors();
            return Page();
        }

        Created = created;
        CreatedHow = "created";
        Notice = $"Key “{created!.Details.Name}” created.";
        ModelState.Clear();
        Name = null;
        Models = [];
        ExpiresAt = null;
        RequestsPerMinute = TokensPerMinute = null;
        SpendLimitDaily = SpendLimitMonthly = SpendLimitTotal = null;
        Scopes = [.. GrantableScopes.Where(s => s is "inference" or "batch")];
        await LoadAsync();
        return Page();
    }

    public async Task<IActionResult> OnPostRotateAsync(Guid keyId)
    {
        if (!Can(OrgAccess.KeysWrite))
        {
            return Denied();
        }

        var role = Organization.Role;
        CreatedKeyResponse? rotated = null;
        if (await TryAsync(async () => rotated = await keys.RotateAsync(OrgId, keyId, new RotateKeyRequest(null), Caller, role, HttpContext.RequestAborted)))
        {
            Created = rotated;
            CreatedHow = "rotated";
            Notice = $"Key “{rotated!.Details.Name}” rotated. The previous secret keeps working until {ConsoleFormat.Time(rotated.Details.PreviousSecretValidUntil)}.";
        }
        else
        {
            MapFieldErrors();
        }

        Scopes = [.. GrantableScopes.Where(s => s is "inference" or "batch")];
        await LoadAsync();
        return Page();
    }

    public async Task<IActionResult> OnPostRevokeAsync(Guid keyId)
    {
        if (!Can(OrgAccess.KeysWrite))
        {
            return Denied();
        }

        await keys.RevokeAsync(OrgId, keyId, Caller, Organization.Role, HttpContext.RequestAborted);
        return Redirect(OrgPath("/keys?done=revoked"));
    }

    private async Task LoadAsync()
    {
        var ct = HttpContext.RequestAborted;
        Keys = [.. (await keys.ListAsync(OrgId, ct)).OrderByDescending(k => k.CreatedAt)];
        var creatorIds = Keys.Select(k => k.CreatedBy).OfType<Guid>().Distinct().ToList();
        Creators = await Db.Users.AsNoTracking().Where(u => creatorIds.Contains(u.Id)).ToDictionaryAsync(u => u.Id, u => u.Email, ct);
        AvailableModels = [.. (await ModelLookup.CallableAsync(catalog, HttpContext.RequestServices.GetService<IOrganizationModels>(), policies, OrgId, ct))
            .Select(m => m.Id)];
    }

    /// <summary>Moves the service's errors under dotted or other names to the form's fields (or above the form).</summary>
    private void MapFieldErrors()
    {
        foreach (var (api, field) in FieldNames)
        {
            if (ModelState.TryGetValue(api, out var entry) && entry.Errors.Count > 0)
            {
                var messages = entry.Errors.Select(e => e.ErrorMessage).ToList();
                ModelState.Remove(api);
                foreach (var message in messages)
                {
                    ModelState.AddModelError(field, message);
                }
            }
        }
    }

    private void CheckSpendLimit(decimal? amount, string field)
    {
        if (amount is { } value && (value <= 0 || value > 1_000_000_000m))
        {
            ModelState.AddModelError(field, "must be a positive amount, or empty for no limit");
        }
    }

    private static long? Micros(decimal? amount) => amount is { } value ? (long)decimal.Round(value * 1_000_000m) : null;

    /// <summary>A limit in micro-units as money, or "none".</summary>
    public string Limit(long? micros) => micros is { } m ? ConsoleFormat.Money(m, Currency) : "none";

    public static string Count(int? value) => value is { } v ? ConsoleFormat.Count(v) : "none";
}
