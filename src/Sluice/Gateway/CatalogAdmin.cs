using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Sluice.Audit;
using Sluice.Crypto;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Gateway;

public sealed record CreateProviderRequest(string? Name, string? Kind, string? BaseUrl, string? ApiKey, IReadOnlyDictionary<string, string>? Headers, int? MaxConcurrentRequests = null, bool? Responses = null);

public sealed record UpdateProviderRequest(string? BaseUrl, string? ApiKey, IReadOnlyDictionary<string, string>? Headers, int? MaxConcurrentRequests = null, bool? Responses = null);

/// <summary>A provider as operators see it: never its API key, and only the names of its extra headers.</summary>
public sealed record ProviderResponse(Guid Id, string Name, string Kind, string BaseUrl, bool HasApiKey, IReadOnlyList<string> HeaderNames, DateTimeOffset CreatedAt, int? MaxConcurrentRequests = null, bool Responses = false);

public sealed record CreateModelRequest(string? Id, string? Description);

public sealed record CreateRouteRequest(string? Model, string? Provider, string? UpstreamModel, int? Priority, int? Weight, bool? RetainsData, bool? TrainsOnData);

public sealed record RouteResponse(Guid Id, string Model, string Provider, string UpstreamModel, int Priority, int Weight, bool RetainsData, bool TrainsOnData);

public sealed record CatalogModelResponse(string Id, string? Description, bool TestModel, IReadOnlyList<RouteResponse> Routes)
{
    /// <summary>Other names a <c>/v1</c> call may use for the model.</summary>
    public IReadOnlyList<string> Aliases { get; init; } = [];
}

public sealed record CreateAliasRequest(string? Alias, string? Model);

public sealed record AliasResponse(string Alias, string Model);

/// <summary>Operators' management of providers, models and routes. Every change is audited and reloads the catalog.</summary>
public sealed partial class CatalogAdmin(SluiceDbContext db, AuditLog audit, SecretBox secrets, Catalog catalog, TimeProvider time)
{
    private static readonly string[] ForbiddenHeaders = ["authorization", "x-api-key", "host", "content-length", "content-type", "anthropic-version"];

    public async Task<IReadOnlyList<ProviderResponse>> ProvidersAsync(CancellationToken ct) =>
        (await db.Providers.AsNoTracking().ToListAsync(ct)).OrderBy(p => p.Name, StringComparer.Ordinal).Select(Response).ToList();

    public async Task<ProviderResponse> ProviderAsync(Guid id, CancellationToken ct) => Response(await FindProviderAsync(id, ct));

    public async Task<ProviderResponse> CreateProviderAsync(CreateProviderRequest request, CancellationToken ct)
    {
        var errors = new FieldErrors();
        var name = request.Name?.Trim();
        if (string.IsNullOrEmpty(name) || !NamePattern().IsMatch(name))
        {
            errors.Add("name", "is required: 1 to 100 letters, digits, '.', '-' or '_'");
        }

        ProviderKind kind = default;
        if (request.Kind is not ("openai-compatible" or "anthropic"))
        {
            errors.Add("kind", "must be openai-compatible or anthropic");
        }
        else
        {
            kind = request.Kind == "anthropic" ? ProviderKind.Anthropic : ProviderKind.OpenAiCompatible;
        }

        var baseUrl = ValidBaseUrl(request.BaseUrl ?? (kind == ProviderKind.Anthropic ? "https://api.anthropic.com/v1/" : null), errors);
        var headers = ValidHeaders(request.Headers, errors);
        if (request.ApiKey is { Length: > 4000 })
        {
            errors.Add("apiKey", "must be at most 4000 characters");
        }

        ValidConcurrency(request.MaxConcurrentRequests, errors);
        ValidResponses(request.Responses, kind, errors);
        errors.ThrowIfAny();
        if (await db.Providers.AnyAsync(p => p.Name == name, ct))
        {
            throw ApiProblem.Conflict("name", "a provider with this name exists");
        }

        var now = time.GetUtcNow();
        var provider = new Provider { Id = Guid.CreateVersion7(now), Name = name!, Kind = kind, BaseUrl = baseUrl!, MaxConcurrentRequests = request.MaxConcurrentRequests, SupportsResponses = request.Responses == true, CreatedAt = now, UpdatedAt = now };
        provider.ExtraHeaders = SealHeaders(headers, provider.Id);
        if (!string.IsNullOrEmpty(request.ApiKey))
        {
            provider.ApiKeyCiphertext = secrets.Seal(request.ApiKey, provider.Id.ToString());
        }

        db.Providers.Add(provider);
        audit.Record("provider.create", $"provider:{provider.Id}");
        await db.SaveChangesAsync(ct);
        await catalog.RefreshAsync(ct);
        return Response(provider);
    }

    public async Task<ProviderResponse> UpdateProviderAsync(Guid id, UpdateProviderRequest request, CancellationToken ct)
    {
        var provider = await FindProviderAsync(id, ct);
        var errors = new FieldErrors();
        if (request.BaseUrl is not null)
        {
            provider.BaseUrl = ValidBaseUrl(request.BaseUrl, errors) ?? provider.BaseUrl;
        }

        if (request.Headers is not null)
        {
            provider.ExtraHeaders = SealHeaders(ValidHeaders(request.Headers, errors), provider.Id);
        }

        if (request.MaxConcurrentRequests is not null)
        {
            // 0 removes the limit.
            ValidConcurrency(request.MaxConcurrentRequests == 0 ? null : request.MaxConcurrentRequests, errors);
            provider.MaxConcurrentRequests = request.MaxConcurrentRequests == 0 ? null : request.MaxConcurrentRequests;
        }

        if (request.Responses is { } responses)
        {
            ValidResponses(responses, provider.Kind, errors);
            provider.SupportsResponses = responses;
        }

        errors.ThrowIfAny();
        if (request.ApiKey is not null)
        {
            provider.ApiKeyCiphertext = request.ApiKey.Length == 0 ? null : secrets.Seal(request.ApiKey, provider.Id.ToString());
        }

        provider.UpdatedAt = time.GetUtcNow();
        audit.Record("provider.update", $"provider:{provider.Id}");
        await db.SaveChangesAsync(ct);
        await catalog.RefreshAsync(ct);
        return Response(provider);
    }

    public async Task DeleteProviderAsync(Guid id, CancellationToken ct)
    {
        var provider = await FindProviderAsync(id, ct);
        if (await db.ModelRoutes.AnyAsync(r => r.ProviderId == id, ct))
        {
            throw ApiProblem.Conflict("id", "routes still use this provider; delete them first");
        }

        db.Providers.Remove(provider);
        audit.Record("provider.delete", $"provider:{id}");
        await db.SaveChangesAsync(ct);
        await catalog.RefreshAsync(ct);
    }

    public async Task<IReadOnlyList<CatalogModelResponse>> ModelsAsync(CancellationToken ct)
    {
        await catalog.RefreshAsync(ct);
        return catalog.Models.Values.OrderBy(m => m.Id, StringComparer.Ordinal).Select(m => new CatalogModelResponse(m.Id, m.Description, m.IsTestModel,
            m.Routes.Select(r => new RouteResponse(r.Id, r.ModelId, r.Provider.Name, r.UpstreamModel, r.Priority, r.Weight, r.RetainsData, r.TrainsOnData)).ToList())
        {
            Aliases = m.Aliases,
        }).ToList();
    }

    /// <summary>
    /// Gives a catalog model another name. The alias is unique across model ids (the built-in ones included), aliases and
    /// deployment names, so a <c>/v1</c> name always means one thing.
    /// </summary>
    public async Task<AliasResponse> CreateAliasAsync(CreateAliasRequest request, CancellationToken ct)
    {
        var errors = new FieldErrors();
        var alias = request.Alias?.Trim();
        if (string.IsNullOrEmpty(alias) || !ModelPattern().IsMatch(alias))
        {
            errors.Add("alias", "is required: 1 to 200 characters of letters, digits and . _ : / -");
        }

        if (string.IsNullOrWhiteSpace(request.Model))
        {
            errors.Add("model", "is required: the catalog model's id");
        }

        errors.ThrowIfAny();
        var modelId = request.Model!.Trim();
        if (!await db.CatalogModels.AnyAsync(m => m.Id == modelId, ct))
        {
            throw ApiProblem.Invalid("model", "no such model in the catalog (an alias names a catalog model by its id, not another alias)");
        }

        if (alias is Catalog.EchoModelId or Catalog.BuiltInEmbeddingsModelId || await db.CatalogModels.AnyAsync(m => m.Id == alias, ct))
        {
            throw ApiProblem.Conflict("alias", "is a model's id; an alias must not collide with a model");
        }

        if (await db.CatalogModelAliases.AnyAsync(a => a.Alias == alias, ct))
        {
            throw ApiProblem.Conflict("alias", "is already an alias; remove it first to point it elsewhere");
        }

        if (await db.Deployments.AnyAsync(d => d.Name == alias && d.DeletedAt == null, ct))
        {
            throw ApiProblem.Conflict("alias", "is a deployment's name; an alias must not collide with a deployment");
        }

        db.CatalogModelAliases.Add(new CatalogModelAlias { Alias = alias!, ModelId = modelId, CreatedAt = time.GetUtcNow() });
        audit.Record("model.alias.create", $"model:{modelId} alias:{alias}");
        await db.SaveChangesAsync(ct);
        await catalog.RefreshAsync(ct);
        return new AliasResponse(alias!, modelId);
    }

    public async Task DeleteAliasAsync(string alias, CancellationToken ct)
    {
        var found = await db.CatalogModelAliases.SingleOrDefaultAsync(a => a.Alias == alias, ct) ?? throw ApiProblem.NotFound("alias");
        db.CatalogModelAliases.Remove(found);
        audit.Record("model.alias.delete", $"model:{found.ModelId} alias:{alias}");
        await db.SaveChangesAsync(ct);
        await catalog.RefreshAsync(ct);
    }

    public async Task<CatalogModelResponse> CreateModelAsync(CreateModelRequest request, CancellationToken ct)
    {
        var id = request.Id?.Trim();
        if (string.IsNullOrEmpty(id) || !ModelPattern().IsMatch(id))
        {
            throw ApiProblem.Invalid("id", "is required: 1 to 200 characters of letters, digits and . _ : / -");
        }

        if (request.Description is { Length: > 500 })
        {
            throw ApiProblem.Invalid("description", "must be at most 500 characters");
        }

        if (await db.CatalogModels.AnyAsync(m => m.Id == id, ct))
        {
            throw ApiProblem.Conflict("id", "a model with this id exists");
        }

        if (await db.CatalogModelAliases.AnyAsync(a => a.Alias == id, ct))
        {
            throw ApiProblem.Conflict("id", "is an alias of another model; remove the alias first");
        }

        db.CatalogModels.Add(new CatalogModel { Id = id, Description = request.Description, CreatedAt = time.GetUtcNow() });
        audit.Record("model.create", $"model:{id}");
        await db.SaveChangesAsync(ct);
        await catalog.RefreshAsync(ct);
        return new CatalogModelResponse(id, request.Description, false, []);
    }

    public async Task DeleteModelAsync(string id, CancellationToken ct)
    {
        var model = await db.CatalogModels.SingleOrDefaultAsync(m => m.Id == id, ct) ?? throw ApiProblem.NotFound("model");
        db.CatalogModels.Remove(model);
        audit.Record("model.delete", $"model:{id}");
        await db.SaveChangesAsync(ct);
        await catalog.RefreshAsync(ct);
    }

    public async Task<RouteResponse> CreateRouteAsync(CreateRouteRequest request, CancellationToken ct)
    {
        var errors = new FieldErrors();
        if (string.IsNullOrWhiteSpace(request.Model))
        {
            errors.Add("model", "is required");
        }

        if (string.IsNullOrWhiteSpace(request.Provider))
        {
            errors.Add("provider", "is required (a provider's name or id)");
        }

        if (string.IsNullOrWhiteSpace(request.UpstreamModel) || request.UpstreamModel.Length > 200)
        {
            errors.Add("upstreamModel", "is required: the provider's own name for the model");
        }

        if (request.Priority is < 0 or > 1000)
        {
            errors.Add("priority", "must be between 0 and 1000 (lower is tried first)");
        }

        if (request.Weight is < 1 or > 1000)
        {
            errors.Add("weight", "must be between 1 and 1000");
        }

        if (request.RetainsData is null)
        {
            errors.Add("retainsData", "is required: does the provider keep prompts or completions after answering?");
        }

        if (request.TrainsOnData is null)
        {
            errors.Add("trainsOnData", "is required: may the provider train on what it receives?");
        }

        errors.ThrowIfAny();
        if (!await db.CatalogModels.AnyAsync(m => m.Id == request.Model, ct))
        {
            throw ApiProblem.Invalid("model", "no such model in the catalog; create it first");
        }

        var provider = await db.Providers.AsNoTracking()
            .SingleOrDefaultAsync(p => p.Name == request.Provider || p.Id.ToString() == request.Provider, ct)
            ?? throw ApiProblem.Invalid("provider", "no such provider");
        var route = new ModelRoute
        {
            Id = Guid.CreateVersion7(time.GetUtcNow()),
            ModelId = request.Model!,
            ProviderId = provider.Id,
            UpstreamModel = request.UpstreamModel!.Trim(),
            Priority = request.Priority ?? 0,
            Weight = request.Weight ?? 1,
            RetainsData = request.RetainsData!.Value,
            TrainsOnData = request.TrainsOnData!.Value,
            CreatedAt = time.GetUtcNow(),
        };
        db.ModelRoutes.Add(route);
        audit.Record("route.create", $"route:{route.Id} model:{route.ModelId}");
        await db.SaveChangesAsync(ct);
        await catalog.RefreshAsync(ct);
        return new RouteResponse(route.Id, route.ModelId, provider.Name, route.UpstreamModel, route.Priority, route.Weight, route.RetainsData, route.TrainsOnData);
    }

    public async Task DeleteRouteAsync(Guid routeId, CancellationToken ct)
    {
        var route = await db.ModelRoutes.SingleOrDefaultAsync(r => r.Id == routeId, ct) ?? throw ApiProblem.NotFound("route");
        db.ModelRoutes.Remove(route);
        audit.Record("route.delete", $"route:{routeId} model:{route.ModelId}");
        await db.SaveChangesAsync(ct);
        await catalog.RefreshAsync(ct);
    }

    private async Task<Provider> FindProviderAsync(Guid id, CancellationToken ct) =>
        await db.Providers.SingleOrDefaultAsync(p => p.Id == id, ct) ?? throw ApiProblem.NotFound("provider");

    private static string? ValidBaseUrl(string? value, FieldErrors errors)
    {
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps) || !string.IsNullOrEmpty(uri.Query))
        {
            errors.Add("baseUrl", "must be an http(s) URL such as http://127.0.0.1:11434/v1/");
            return null;
        }

        return uri.ToString().EndsWith('/') ? uri.ToString() : uri + "/";
    }

    private static string? ValidHeaders(IReadOnlyDictionary<string, string>? headers, FieldErrors errors)
    {
        if (headers is null || headers.Count == 0)
        {
            return null;
        }

        if (headers.Count > 20 || headers.Any(h => !HeaderPattern().IsMatch(h.Key) || ForbiddenHeaders.Contains(h.Key.ToLowerInvariant()) || h.Value.Length > 1000 || h.Value.Contains('\n', StringComparison.Ordinal)))
        {
            errors.Add("headers", "at most 20 headers with token names (not Authorization, x-api-key, Host or Content-*) and single-line values");
            return null;
        }

        return JsonSerializer.Serialize(headers);
    }

    private ProviderResponse Response(Provider p) => new(
        p.Id, p.Name, p.Kind == ProviderKind.Anthropic ? "anthropic" : "openai-compatible", p.BaseUrl, p.ApiKeyCiphertext is not null,
        OpenHeaders(secrets, p).Select(h => h.Key).ToList(), p.CreatedAt, p.MaxConcurrentRequests, p.SupportsResponses);

    private static void ValidConcurrency(int? value, FieldErrors errors)
    {
        if (value is < 1 or > 100_000)
        {
            errors.Add("maxConcurrentRequests", "must be between 1 and 100000 (0 on update removes the limit)");
        }
    }

    private static void ValidResponses(bool? value, ProviderKind kind, FieldErrors errors)
    {
        if (value == true && kind != ProviderKind.OpenAiCompatible)
        {
            errors.Add("responses", "only an openai-compatible provider can speak the Responses API");
        }
    }

    /// <summary>Extra headers can carry credentials too, so they are sealed like the API key.</summary>
    private string? SealHeaders(string? json, Guid providerId) => json is null ? null : secrets.Seal(json, HeadersContext(providerId));

    internal static IReadOnlyList<KeyValuePair<string, string>> OpenHeaders(SecretBox secrets, Provider provider) =>
        provider.ExtraHeaders is { } sealedHeaders
            ? JsonSerializer.Deserialize<Dictionary<string, string>>(secrets.Open(sealedHeaders, HeadersContext(provider.Id)))!.ToList()
            : [];

    private static string HeadersContext(Guid providerId) => $"{providerId}:headers";

    [GeneratedRegex("^[A-Za-z0-9._-]{1,100}$")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^[A-Za-z0-9._:/-]{1,200}$")]
    private static partial Regex ModelPattern();

    [GeneratedRegex("^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")]
    private static partial Regex HeaderPattern();
}
