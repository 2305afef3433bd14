using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Crypto;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Gateway;

/// <summary>A provider as the hot path needs it, its API key decrypted in memory only.</summary>
public sealed record ProviderInfo(Guid Id, string Name, ProviderKind Kind, Uri BaseUrl, string? ApiKey, IReadOnlyList<KeyValuePair<string, string>> Headers, int? MaxConcurrentRequests = null, bool SupportsResponses = false)
{
    public bool Supports(InferenceEndpoint endpoint) => Kind switch
    {
        ProviderKind.Anthropic => endpoint == InferenceEndpoint.ChatCompletions,
        ProviderKind.BuiltInEmbeddings => endpoint == InferenceEndpoint.Embeddings,
        _ => true,
    };

    /// <summary>A model Sluice serves itself (echo, the built-in embeddings): its route is no catalog row.</summary>
    public bool IsBuiltIn => Kind is ProviderKind.Echo or ProviderKind.BuiltInEmbeddings;
}

public sealed record RouteInfo(Guid Id, string ModelId, ProviderInfo Provider, string UpstreamModel, int Priority, int Weight, bool RetainsData, bool TrainsOnData)
{
    /// <summary>The prices in force when the catalog was loaded; null means the route is free.</summary>
    public Billing.RoutePricing? Pricing { get; init; }
}

public sealed record ModelInfo(string Id, string? Description, DateTimeOffset CreatedAt, bool IsTestModel, IReadOnlyList<RouteInfo> Routes)
{
    /// <summary>What <c>/v1/models</c> says owns it; null: "sluice" (or "sluice-test-model" for a test model).</summary>
    public string? OwnedBy { get; init; }

    /// <summary>Other names a call may use for this model (catalog models only), in order.</summary>
    public IReadOnlyList<string> Aliases { get; init; } = [];
}

/// <summary>
/// The model catalog in memory: models, their routes ordered by priority, and providers. Reloaded after every change
/// made on this replica and every <see cref="GatewayOptions.CatalogRefreshInterval"/> for changes made elsewhere, so
/// the hot path never queries the database for routing.
/// </summary>
public sealed class Catalog(
    IServiceScopeFactory scopes, IOptions<GatewayOptions> options, SecretBox secrets, TimeProvider time, IOptions<BuiltInEmbeddingsOptions>? builtInEmbeddings = null)
{
    public const string EchoModelId = "echo";

    /// <summary>The built-in embeddings model (<see cref="BuiltInEmbeddingsOptions"/>).</summary>
    public const string BuiltInEmbeddingsModelId = "all-MiniLM-L6-v2";

    private static readonly ProviderInfo EchoProvider = new(Guid.Empty, "sluice-echo", ProviderKind.Echo, new Uri("urn:sluice:echo"), null, []);

    // Its own route id, so its circuit breaker is not echo's; built-in routes are never written as a usage event's route.
    private static readonly Guid BuiltInEmbeddingsRouteId = new("5a1ce000-0000-4000-8000-0000000e0b01");
    private static readonly ProviderInfo BuiltInEmbeddingsProvider = new(
        BuiltInEmbeddingsRouteId, "sluice-embeddings", ProviderKind.BuiltInEmbeddings, new Uri("urn:sluice:embeddings"), null, []);

    private volatile Snapshot _current = new(new(StringComparer.Ordinal), new(StringComparer.Ordinal));

    /// <summary>The models by canonical id (aliases are not keys here).</summary>
    public IReadOnlyDictionary<string, ModelInfo> Models => _current.Models;

    /// <summary>The model with this id or alias.</summary>
    public ModelInfo? Find(string model)
    {
        var current = _current;
        return current.Models.TryGetValue(model, out var found) || current.Aliases.TryGetValue(model, out found) ? found : null;
    }

    /// <summary>Whether <paramref name="name"/> is an alias (not a model's own id).</summary>
    public bool IsAlias(string name) => _current.Aliases.ContainsKey(name);

    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        var providers = (await db.Providers.AsNoTracking().ToListAsync(cancellationToken)).ToDictionary(p => p.Id, ToInfo);
        var routes = await db.ModelRoutes.AsNoTracking().ToListAsync(cancellationToken);
        var models = await db.CatalogModels.AsNoTracking().ToListAsync(cancellationToken);
        var now = time.GetUtcNow(); // a price in force from a future time starts when the server's clock reaches it
        var aliases = (await db.CatalogModelAliases.AsNoTracking().ToListAsync(cancellationToken))
            .GroupBy(a => a.ModelId, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => (IReadOnlyList<string>)g.Select(a => a.Alias).Order(StringComparer.Ordinal).ToList(), StringComparer.Ordinal);
        var prices = (await db.RoutePrices.AsNoTracking().ToListAsync(cancellationToken))
            .Where(p => p.EffectiveFrom <= now)
            .GroupBy(p => p.RouteId)
            .ToDictionary(g => g.Key, g => g.OrderByDescending(p => p.EffectiveFrom).ThenByDescending(p => p.CreatedAt).First());

        var catalog = new Dictionary<string, ModelInfo>(StringComparer.Ordinal);
        foreach (var model in models)
        {
            var modelRoutes = routes.Where(r => r.ModelId == model.Id && providers.ContainsKey(r.ProviderId))
                .Select(r => new RouteInfo(r.Id, r.ModelId, providers[r.ProviderId], r.UpstreamModel, r.Priority, Math.Max(1, r.Weight), r.RetainsData, r.TrainsOnData)
                {
                    Pricing = prices.TryGetValue(r.Id, out var p)
                        ? new Billing.RoutePricing(p.InputPerMillionMicros, p.OutputPerMillionMicros, p.CachedInputPerMillionMicros, p.RequestFeeMicros)
                        : null,
                })
                .OrderBy(r => r.Priority).ThenBy(r => r.Id)
                .ToList();
            catalog[model.Id] = new ModelInfo(model.Id, model.Description, model.CreatedAt, false, modelRoutes)
            {
                Aliases = aliases.TryGetValue(model.Id, out var names) ? names : [],
            };
        }

        if (options.Value.EchoModel && !catalog.ContainsKey(EchoModelId))
        {
            catalog[EchoModelId] = new ModelInfo(EchoModelId, "Built-in deterministic test model: it echoes the last message.", DateTimeOffset.UnixEpoch, true,
                [new RouteInfo(Guid.Empty, EchoModelId, EchoProvider, EchoModelId, 0, 1, false, false)]);
        }

        if (builtInEmbeddings?.Value.Enabled == true && !catalog.ContainsKey(BuiltInEmbeddingsModelId))
        {
            // Local and free, like echo: content never leaves the machine and nothing is retained or trained on.
            catalog[BuiltInEmbeddingsModelId] = new ModelInfo(BuiltInEmbeddingsModelId,
                "Built-in sentence embeddings (384 dimensions, inputs cut at 256 tokens), served on this machine by ONNX Runtime.", DateTimeOffset.UnixEpoch, false,
                [new RouteInfo(BuiltInEmbeddingsRouteId, BuiltInEmbeddingsModelId, BuiltInEmbeddingsProvider, BuiltInEmbeddingsModelId, 0, 1, false, false)]);
        }

        var byAlias = new Dictionary<string, ModelInfo>(StringComparer.Ordinal);
        foreach (var model in catalog.Values)
        {
            foreach (var alias in model.Aliases)
            {
                byAlias.TryAdd(alias, model); // a model's own id wins (CatalogAdmin keeps them apart anyway)
            }
        }

        _current = new Snapshot(catalog, byAlias);
    }

    /// <summary>Models and aliases swapped as one, so a reader never sees an alias of a model it cannot find.</summary>
    private sealed record Snapshot(Dictionary<string, ModelInfo> Models, Dictionary<string, ModelInfo> Aliases);

    private ProviderInfo ToInfo(Provider provider) => new(
        provider.Id,
        provider.Name,
        provider.Kind,
        new Uri(provider.BaseUrl.EndsWith('/') ? provider.BaseUrl : provider.BaseUrl + "/"),
        provider.ApiKeyCiphertext is { } sealedKey ? secrets.Open(sealedKey, provider.Id.ToString()) : null,
        CatalogAdmin.OpenHeaders(secrets, provider),
        provider.MaxConcurrentRequests,
        provider.SupportsResponses);
}

/// <summary>Loads the catalog before the server starts, then reloads it periodically (changes made by other replicas).</summary>
internal sealed class CatalogRefresher(Catalog catalog, IOptions<GatewayOptions> options, TimeProvider time, ILogger<CatalogRefresher> logger, Hosting.BackgroundHealth? health = null) : Hosting.SupervisedService(health)
{
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await catalog.RefreshAsync(cancellationToken);
        await base.StartAsync(cancellationToken);
    }

    protected override Task RunAsync(CancellationToken stoppingToken) =>
        PeriodicWork.RunAsync(options.Value.CatalogRefreshInterval, time, logger, "Reloading the model catalog", catalog.RefreshAsync, stoppingToken, Health);
}
