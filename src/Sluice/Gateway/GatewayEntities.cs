using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Sluice.Gateway;

public enum ProviderKind
{
    OpenAiCompatible,
    Anthropic,

    /// <summary>The built-in deterministic test model; never stored.</summary>
    Echo,

    /// <summary>The built-in all-MiniLM-L6-v2 embeddings model, served by a child engine process; never stored.</summary>
    BuiltInEmbeddings,

    /// <summary>An organization's deployment on its machines (Deployments/), reached through the agents; never stored as a provider.</summary>
    Deployment,
}

/// <summary>An upstream that serves models: an OpenAI-compatible server or Anthropic. Its API key is stored encrypted.</summary>
public sealed class Provider
{
    public Guid Id { get; init; }

    public required string Name { get; set; }

    public ProviderKind Kind { get; init; }

    public required string BaseUrl { get; set; }

    /// <summary>AES-256-GCM under the secrets key outside the database, bound to the provider id; null when none.</summary>
    public string? ApiKeyCiphertext { get; set; }

    /// <summary>Extra request headers (a JSON object), sealed like the API key since they may carry credentials.</summary>
    public string? ExtraHeaders { get; set; }

    /// <summary>The most requests batch runners send it at once (per replica); null means no limit.</summary>
    public int? MaxConcurrentRequests { get; set; }

    /// <summary>Whether it speaks OpenAI's Responses API itself: <c>/v1/responses</c> calls then go to it as they came (OpenAI-compatible providers only).</summary>
    public bool SupportsResponses { get; set; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>A public model id clients ask for.</summary>
public sealed class CatalogModel
{
    public required string Id { get; init; }

    public string? Description { get; set; }

    public DateTimeOffset CreatedAt { get; init; }
}

/// <summary>
/// Another name for a catalog model: a <c>/v1</c> call naming it is served, granted-checked and metered as the model.
/// Unique across model ids, aliases and deployment names (CatalogAdmin checks).
/// </summary>
public sealed class CatalogModelAlias
{
    public required string Alias { get; init; }

    public required string ModelId { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
}

/// <summary>One way to serve a catalog model: a provider, its name for the model, a priority and weight, and its data policy.</summary>
public sealed class ModelRoute
{
    public Guid Id { get; init; }

    public required string ModelId { get; init; }

    public Guid ProviderId { get; init; }

    public required string UpstreamModel { get; init; }

    /// <summary>Lower is tried first; routes of equal priority share load.</summary>
    public int Priority { get; init; }

    public int Weight { get; init; } = 1;

    /// <summary>Whether the provider keeps prompts or completions after answering.</summary>
    public bool RetainsData { get; init; }

    /// <summary>Whether the provider may train on what it receives.</summary>
    public bool TrainsOnData { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
}

/// <summary>Metadata about one inference request. Never content.</summary>
public sealed class UsageEvent
{
    public Guid Id { get; init; }

    public required string RequestId { get; init; }

    public Guid? OrganizationId { get; init; }

    public Guid? KeyId { get; init; }

    public required string Endpoint { get; init; }

    public string? Model { get; init; }

    public Guid? RouteId { get; init; }

    public int Status { get; init; }

    public string? ErrorType { get; init; }

    public bool Stream { get; init; }

    public int Attempts { get; init; }

    public long PromptTokens { get; init; }

    public long CompletionTokens { get; init; }

    public long CachedTokens { get; init; }

    /// <summary>True when the provider reported no usage and the token counts are Sluice's own (its tokenizer).</summary>
    public bool TokensCountedLocally { get; init; }

    public long RequestBytes { get; init; }

    public long ResponseBytes { get; init; }

    public long LatencyMicros { get; init; }

    public long? TimeToFirstTokenMicros { get; init; }

    /// <summary>What the request was charged, in micro-units (0 for free routes and failures that produced nothing).</summary>
    public long CostMicros { get; init; }

    /// <summary>The batch this request was a line of; null for real-time traffic.</summary>
    public Guid? BatchId { get; init; }

    /// <summary>The deployment that served the request (its model is the deployment's name); null for catalog routes.</summary>
    public Guid? DeploymentId { get; init; }

    /// <summary>How long the request waited for a ready replica of its deployment (µs); null when not a deployment.</summary>
    public long? QueueWaitMicros { get; init; }

    /// <summary>Whether the request met a cold start (waited for a replica to start); null when not a deployment.</summary>
    public bool? ColdStart { get; init; }

    public DateTimeOffset StartedAt { get; init; }
}

internal sealed class GatewayConfiguration :
    IEntityTypeConfiguration<Provider>, IEntityTypeConfiguration<CatalogModel>, IEntityTypeConfiguration<ModelRoute>, IEntityTypeConfiguration<UsageEvent>,
    IEntityTypeConfiguration<CatalogModelAlias>
{
    public void Configure(EntityTypeBuilder<CatalogModelAlias> builder)
    {
        builder.ToTable("catalog_model_aliases");
        builder.HasKey(a => a.Alias);
        builder.Property(a => a.Alias).HasMaxLength(200);
        builder.Property(a => a.ModelId).HasMaxLength(200);
        builder.HasIndex(a => a.ModelId);
        builder.HasOne<CatalogModel>().WithMany().HasForeignKey(a => a.ModelId).OnDelete(DeleteBehavior.Cascade);
    }

    public void Configure(EntityTypeBuilder<Provider> builder)
    {
        builder.ToTable("providers");
        builder.HasKey(p => p.Id);
        builder.Property(p => p.Id).ValueGeneratedNever();
        builder.Property(p => p.Name).HasMaxLength(100);
        builder.HasIndex(p => p.Name).IsUnique();
        builder.Property(p => p.Kind).HasConversion<string>().HasMaxLength(32);
        builder.Property(p => p.BaseUrl).HasMaxLength(500);
        builder.Property(p => p.ApiKeyCiphertext).HasMaxLength(2000);
        builder.Property(p => p.ExtraHeaders).HasMaxLength(4000);
        builder.Property(p => p.SupportsResponses).HasDefaultValue(false); // added to existing rows by a migration
    }

    public void Configure(EntityTypeBuilder<CatalogModel> builder)
    {
        builder.ToTable("catalog_models");
        builder.HasKey(m => m.Id);
        builder.Property(m => m.Id).HasMaxLength(200);
        builder.Property(m => m.Description).HasMaxLength(500);
    }

    public void Configure(EntityTypeBuilder<ModelRoute> builder)
    {
        builder.ToTable("model_routes");
        builder.HasKey(r => r.Id);
        builder.Property(r => r.Id).ValueGeneratedNever();
        builder.Property(r => r.ModelId).HasMaxLength(200);
        builder.Property(r => r.UpstreamModel).HasMaxLength(200);
        builder.HasIndex(r => r.ModelId);
        builder.HasOne<CatalogModel>().WithMany().HasForeignKey(r => r.ModelId).OnDelete(DeleteBehavior.Cascade);
        builder.HasOne<Provider>().WithMany().HasForeignKey(r => r.ProviderId).OnDelete(DeleteBehavior.Restrict);
    }

    public void Configure(EntityTypeBuilder<UsageEvent> builder)
    {
        builder.ToTable("usage_events");
        builder.HasKey(e => e.Id);
        builder.Property(e => e.Id).ValueGeneratedNever();
        builder.Property(e => e.RequestId).HasMaxLength(64);
        builder.Property(e => e.Endpoint).HasMaxLength(32);
        builder.Property(e => e.Model).HasMaxLength(200);
        builder.Property(e => e.ErrorType).HasMaxLength(64);
        builder.Property(e => e.CostMicros).HasDefaultValue(0L); // added to existing rows by a migration
        builder.Property(e => e.TokensCountedLocally).HasDefaultValue(false); // likewise
        builder.HasIndex(e => new { e.OrganizationId, e.StartedAt });
        builder.HasIndex(e => e.StartedAt);
        builder.HasIndex(e => new { e.DeploymentId, e.StartedAt });
    }
}
