using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using Sluice.Gateway;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages.Orgs;

/// <summary>
/// Chat (streaming) and embeddings against the models the organization may use. The page's script
/// (Assets/playground.js) calls <c>/v1</c> itself, with a short-lived key that <see cref="OnPostKeyAsync"/> mints on the
/// first send (scope <c>inference</c> only, created by the viewer, audited like any key, listed on the keys page as
/// "playground") and reuses until it expires. The conversation lives only in the page's memory: nothing here stores it.
/// </summary>
[OrgPermission(OrgAccess.KeysWrite)]
public sealed class PlaygroundModel(Catalog catalog, OrganizationPolicies policies, IOptions<ConsoleOptions> options, TimeProvider time) : OrgPage
{
    public override string Title => "Playground";

    public IReadOnlyList<string> ChatModels { get; private set; } = [];

    public IReadOnlyList<string> EmbeddingModels { get; private set; } = [];

    /// <summary>The form token the script sends with its first request for a key (each answer carries the next one).</summary>
    public string FormToken { get; private set; } = "";

    public TimeSpan KeyLifetime => options.Value.PlaygroundKeyLifetime;

    public async Task OnGetAsync([FromServices] IAntiforgery tokens)
    {
        var models = await ModelLookup.CallableAsync(catalog, HttpContext.RequestServices.GetService<IOrganizationModels>(), policies, OrgId, HttpContext.RequestAborted);
        ChatModels = [.. models.Where(m => ModelLookup.Serves(m, InferenceEndpoint.ChatCompletions)).Select(m => m.Id)];
        EmbeddingModels = [.. models.Where(m => ModelLookup.Serves(m, InferenceEndpoint.Embeddings)).Select(m => m.Id)];
        FormToken = tokens.GetTokens(HttpContext).RequestToken!;
    }

    /// <summary>
    /// Mints the playground's key (the form token in <c>X-CSRF-TOKEN</c> was checked and spent before this runs) and
    /// answers it with the next form token. The secret goes only into this answer (never cached: no-store).
    /// </summary>
    public async Task<IActionResult> OnPostKeyAsync([FromServices] ApiKeyService keys, [FromServices] IAntiforgery tokens)
    {
        if (!Can(OrgAccess.KeysWrite))
        {
            return Denied();
        }

        var lifetime = options.Value.PlaygroundKeyLifetime;
        var role = Organization.Role;
        var created = await keys.CreateAsync(OrgId,
            new CreateKeyRequest(KeysModel.PlaygroundKeyName, ["inference"], null, time.GetUtcNow() + lifetime, null, null, null),
            UserId, HttpContext.RequestAborted, new ScopeCeiling(Permissions.ScopesAllowed(role), $"your role ({Roles.Format(role)})"));
        return new JsonResult(new PlaygroundKey(created.Key, (int)lifetime.TotalSeconds, tokens.GetTokens(HttpContext).RequestToken!));
    }

    /// <summary>What the script gets: the key, how long it lives, and the form token for its next request.</summary>
    public sealed record PlaygroundKey(string Key, int ExpiresInSeconds, string Token);
}
