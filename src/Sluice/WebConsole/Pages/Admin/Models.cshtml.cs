using System.Globalization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Sluice.Billing;
using Sluice.Gateway;

namespace Sluice.WebConsole.Pages.Admin;

/// <summary>
/// Operators' catalog: models, their routes (which provider serves them, in what order, and what it does with data),
/// prices per route effective from a moment (<see cref="PriceBook"/>), and aliases. Every form goes through the same
/// services as <c>/api/v1/catalog</c>; prices are typed in the billing currency per million tokens and stored as
/// micro-units.
/// </summary>
public sealed class ModelsModel(CatalogAdmin admin, PriceBook prices, Microsoft.Extensions.Options.IOptions<BillingOptions> billing) : OperatorPage
{
    public override string Title => "Models and prices";

    public string Currency => billing.Value.Currency;

    public IReadOnlyList<CatalogModelResponse> Models { get; private set; } = [];

    public IReadOnlyList<ProviderResponse> Providers { get; private set; } = [];

    public IReadOnlyList<PriceResponse> Prices { get; private set; } = [];

    /// <summary>Routes operators created (the built-in models' routes are part of the program: no price, no delete).</summary>
    public IReadOnlySet<Guid> StoredRoutes { get; private set; } = new HashSet<Guid>();

    [BindProperty]
    public string? NewModelId { get; set; }

    [BindProperty]
    public string? Description { get; set; }

    [BindProperty]
    public string? RouteModel { get; set; }

    [BindProperty]
    public string? Provider { get; set; }

    [BindProperty]
    public string? UpstreamModel { get; set; }

    [BindProperty]
    public int? Priority { get; set; }

    [BindProperty]
    public int? Weight { get; set; }

    /// <summary>"yes", "no" or blank (not answered: the service requires an answer).</summary>
    [BindProperty]
    public string? RetainsData { get; set; }

    [BindProperty]
    public string? TrainsOnData { get; set; }

    [BindProperty]
    public Guid? PriceRoute { get; set; }

    [BindProperty]
    public decimal? InputPrice { get; set; }

    [BindProperty]
    public decimal? OutputPrice { get; set; }

    [BindProperty]
    public decimal? CachedInputPrice { get; set; }

    [BindProperty]
    public decimal? RequestFee { get; set; }

    /// <summary>A UTC moment from a <c>datetime-local</c> field; blank is now.</summary>
    [BindProperty]
    public DateTime? EffectiveFrom { get; set; }

    [BindProperty]
    public string? Alias { get; set; }

    [BindProperty]
    public string? AliasModel { get; set; }

    public IEnumerable<PriceResponse> PricesOf(Guid routeId) => Prices.Where(p => p.RouteId == routeId);

    public string Money(long micros) => ConsoleFormat.Money(micros, Currency);

    public async Task OnGetAsync(string? done)
    {
        Notice = done switch
        {
            "model" => "Model added.",
            "route" => "Route added.",
            "route-deleted" => "Route deleted.",
            "price" => "Price set.",
            "alias" => "Alias added.",
            "alias-deleted" => "Alias removed.",
            _ => null,
        };
        await LoadAsync();
    }

    public async Task<IActionResult> OnPostModelAsync()
    {
        if (!await TryAsync(() => admin.CreateModelAsync(new CreateModelRequest(NewModelId, string.IsNullOrWhiteSpace(Description) ? null : Description.Trim()), HttpContext.RequestAborted)))
        {
            AdminForms.Remap(ModelState, ("id", nameof(NewModelId)));
            return await AgainAsync();
        }

        return Redirect("/admin/models?done=model");
    }

    public async Task<IActionResult> OnPostRouteAsync()
    {
        if (!await TryAsync(() => admin.CreateRouteAsync(
                new CreateRouteRequest(RouteModel, Provider, UpstreamModel, Priority, Weight, YesNo(RetainsData), YesNo(TrainsOnData)), HttpContext.RequestAborted)))
        {
            AdminForms.Remap(ModelState, ("model", nameof(RouteModel)));
            return await AgainAsync();
        }

        return Redirect("/admin/models?done=route");
    }

    public async Task<IActionResult> OnPostDeleteRouteAsync(Guid routeId)
    {
        await admin.DeleteRouteAsync(routeId, HttpContext.RequestAborted);
        return Redirect("/admin/models?done=route-deleted");
    }

    public async Task<IActionResult> OnPostPriceAsync()
    {
        if (PriceRoute is null)
        {
            ModelState.AddModelError(nameof(PriceRoute), "choose the route the price is for");
        }

        DateTimeOffset? from = EffectiveFrom is { } local ? new DateTimeOffset(DateTime.SpecifyKind(local, DateTimeKind.Utc)) : null;
        if (!await TryAsync(() => prices.SetAsync(PriceRoute!.Value,
                new SetPriceRequest(Micros(InputPrice), Micros(OutputPrice), Micros(CachedInputPrice), Micros(RequestFee), from), HttpContext.RequestAborted)))
        {
            AdminForms.Remap(ModelState, ("inputPerMillionMicros", nameof(InputPrice)), ("outputPerMillionMicros", nameof(OutputPrice)),
                ("cachedInputPerMillionMicros", nameof(CachedInputPrice)), ("requestFeeMicros", nameof(RequestFee)));
            return await AgainAsync();
        }

        return Redirect("/admin/models?done=price");
    }

    public async Task<IActionResult> OnPostAliasAsync()
    {
        if (!await TryAsync(() => admin.CreateAliasAsync(new CreateAliasRequest(Alias, AliasModel), HttpContext.RequestAborted)))
        {
            AdminForms.Remap(ModelState, ("model", nameof(AliasModel)));
            return await AgainAsync();
        }

        return Redirect("/admin/models?done=alias");
    }

    public async Task<IActionResult> OnPostDeleteAliasAsync(string alias)
    {
        await admin.DeleteAliasAsync(alias, HttpContext.RequestAborted);
        return Redirect("/admin/models?done=alias-deleted");
    }

    /// <summary>"Effective from" as a <c>datetime-local</c> value (UTC).</summary>
    public string? EffectiveFromValue => EffectiveFrom?.ToString("yyyy-MM-ddTHH:mm", CultureInfo.InvariantCulture);

    private async Task<IActionResult> AgainAsync()
    {
        await LoadAsync();
        return Page();
    }

    private async Task LoadAsync()
    {
        Models = await admin.ModelsAsync(HttpContext.RequestAborted);
        Providers = await admin.ProvidersAsync(HttpContext.RequestAborted);
        Prices = await prices.ListAsync(null, HttpContext.RequestAborted);
        StoredRoutes = (await Db.ModelRoutes.AsNoTracking().Select(r => r.Id).ToListAsync(HttpContext.RequestAborted)).ToHashSet();
    }

    private static bool? YesNo(string? value) => value switch
    {
        "yes" => true,
        "no" => false,
        _ => null,
    };

    /// <summary>An amount in the currency as micro-units (the service refuses fractions of a micro-unit and negatives).</summary>
    private static decimal? Micros(decimal? amount) => amount * 1_000_000m;
}
