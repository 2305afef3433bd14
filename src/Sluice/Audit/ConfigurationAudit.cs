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

    /// <summary>
    /// A server refused to start over settings (a retention below its legal minimum, say): when the database is already
    /// there, the refusal is appended to the log as <c>config.refused</c>, naming the settings and never their values.
    /// Best effort: a database that cannot be reached or is not migrated yet leaves the refusal to the console.
    /// </summary>
    public static async Task TryRecordRefusalAsync(IServiceProvider services, Microsoft.Extensions.Options.OptionsValidationException refusal)
    {
        var settings = refusal.Failures.Select(f => f.Split(": ", 2)[0]).Where(n => n.Length <= 64).Distinct().Order(StringComparer.Ordinal).ToList();
        try
        {
            await using var scope = services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            if (!(await db.Database.GetAppliedMigrationsAsync()).Any())
            {
                return;
            }

            var log = new AuditLog(db, new AuditActor { Fixed = "system" }, scope.ServiceProvider.GetRequiredService<TimeProvider>());
            await log.RefuseAsync("config.refused", $"settings:{string.Join(',', settings)}", null, CancellationToken.None);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Best effort by design: the settings that were refused may be the database's own (an invalid timeout, an
            // unreachable server), and the console already carries the refusal.
        }
    }
}
