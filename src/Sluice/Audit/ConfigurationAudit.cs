using System.Security.Cryptography;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Sluice.Storage;

namespace Sluice.Audit;

/// <summary>
/// Settings come from files and the environment and take effect when a server starts, so that is when a change is
/// recorded: the server fingerprints its effective settings (never the connection string, which can hold a
/// password) and appends <c>config.change</c> when the fingerprint differs from the last one in the log.
/// </summary>
internal sealed class ConfigurationAudit(IServiceScopeFactory scopes, IConfiguration configuration) : IHostedService
{
    private static readonly string[] AuditedSections = ["Server", "Database", "Identity", "Audit"];

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var target = $"settings:sha256:{Fingerprint(configuration)}";
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        var last = await db.AuditEntries.AsNoTracking().Where(e => e.Action == "config.change")
            .OrderByDescending(e => e.Seq).Select(e => e.Target).FirstOrDefaultAsync(cancellationToken);
        if (last == target)
        {
            return;
        }

        scope.ServiceProvider.GetRequiredService<AuditLog>().Record("config.change", target, actorOverride: "system");
        await db.SaveChangesAsync(cancellationToken);
    }

    /// <summary>SHA-256 (first 16 bytes, hex) over the sorted <c>key=value</c> lines of the audited sections.</summary>
    public static string Fingerprint(IConfiguration configuration)
    {
        var lines = AuditedSections
            .SelectMany(section => configuration.GetSection(section).AsEnumerable())
            .Where(pair => pair.Value is not null)
            .Select(pair => $"{pair.Key.ToLowerInvariant()}={pair.Value}")
            .Order(StringComparer.Ordinal);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join('\n', lines))).AsSpan(0, 16));
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
