using Microsoft.AspNetCore.Mvc;
using Sluice.Gateway;

namespace Sluice.WebConsole.Pages.Admin;

/// <summary>
/// Operators' providers: the upstreams the gateway forwards to, with the same validation as <c>/api/v1/providers</c>
/// (<see cref="CatalogAdmin"/>). The API key is write-only: typed into a password field, sealed by the service, never
/// shown again. The circuit of every route is shown read-only from this replica's <see cref="RouteSelector"/>.
/// </summary>
public sealed class ProvidersModel(CatalogAdmin admin, RouteSelector routes) : OperatorPage
{
    public override string Title => "Providers";

    public IReadOnlyList<ProviderResponse> Providers { get; private set; } = [];

    public IReadOnlyList<CatalogModelResponse> Models { get; private set; } = [];

    /// <summary>The provider being edited (<c>?edit=id</c>), or null.</summary>
    public ProviderResponse? Editing { get; private set; }

    [BindProperty]
    public string? Name { get; set; }

    [BindProperty]
    public string Kind { get; set; } = "openai-compatible";

    [BindProperty]
    public string? BaseUrl { get; set; }

    [BindProperty]
    public string? ApiKey { get; set; }

    [BindProperty]
    public int? MaxConcurrentRequests { get; set; }

    [BindProperty]
    public bool Responses { get; set; }

    [BindProperty]
    public string? EditBaseUrl { get; set; }

    [BindProperty]
    public string? EditApiKey { get; set; }

    [BindProperty]
    public bool RemoveApiKey { get; set; }

    [BindProperty]
    public int? EditMaxConcurrentRequests { get; set; }

    [BindProperty]
    public bool EditResponses { get; set; }

    public CircuitSnapshot Circuit(Guid routeId) => routes.Circuit(routeId);

    public async Task<IActionResult> OnGetAsync(Guid? edit, string? done)
    {
        Notice = done switch
        {
            "created" => "Provider added.",
            "updated" => "Provider saved.",
            "deleted" => "Provider deleted.",
            _ => null,
        };
        await LoadAsync(edit);
        if (Editing is { } provider)
        {
            EditBaseUrl = provider.BaseUrl;
            EditMaxConcurrentRequests = provider.MaxConcurrentRequests;
            EditResponses = provider.Responses;
        }

        return Page();
    }

    public async Task<IActionResult> OnPostCreateAsync()
    {
        if (!await TryAsync(() => admin.CreateProviderAsync(
                new CreateProviderRequest(Name, Kind, string.IsNullOrWhiteSpace(BaseUrl) ? null : BaseUrl.Trim(), string.IsNullOrEmpty(ApiKey) ? null : ApiKey, null,
                    MaxConcurrentRequests, Responses), HttpContext.RequestAborted)))
        {
            ApiKey = null; // a secret is never sent back, even after a refusal
            await LoadAsync(null);
            return Page();
        }

        return Redirect("/admin/providers?done=created");
    }

    public async Task<IActionResult> OnPostUpdateAsync(Guid id)
    {
        // Blank key: keep the one stored; "remove" clears it. Blank limit: no limit (0 for the service).
        var key = RemoveApiKey ? "" : string.IsNullOrEmpty(EditApiKey) ? null : EditApiKey;
        if (!await TryAsync(() => admin.UpdateProviderAsync(id,
                new UpdateProviderRequest(EditBaseUrl ?? "", key, null, EditMaxConcurrentRequests ?? 0, EditResponses), HttpContext.RequestAborted)))
        {
            AdminForms.Remap(ModelState, ("baseUrl", nameof(EditBaseUrl)), ("apiKey", nameof(EditApiKey)),
                ("maxConcurrentRequests", nameof(EditMaxConcurrentRequests)), ("responses", nameof(EditResponses)));
            EditApiKey = null;
            await LoadAsync(id);
            return Page();
        }

        return Redirect("/admin/providers?done=updated");
    }

    public async Task<IActionResult> OnPostDeleteAsync(Guid id)
    {
        if (!await TryAsync(() => admin.DeleteProviderAsync(id, HttpContext.RequestAborted)))
        {
            AdminForms.Remap(ModelState, ("id", string.Empty));
            await LoadAsync(null);
            return Page();
        }

        return Redirect("/admin/providers?done=deleted");
    }

    private async Task LoadAsync(Guid? edit)
    {
        Providers = await admin.ProvidersAsync(HttpContext.RequestAborted);
        Models = await admin.ModelsAsync(HttpContext.RequestAborted);
        Editing = edit is { } id ? Providers.FirstOrDefault(p => p.Id == id) : null;
    }
}
