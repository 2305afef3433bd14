using Microsoft.EntityFrameworkCore;
using Sluice.Cli;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Privacy;

/// <summary>Retention settings that would break a commitment or the law stop the server, naming the setting, and are audited.</summary>
public sealed class RetentionSettingsTests
{
    [Theory]
    [InlineData("Retention:Billing=365.00:00:00", "Retention:Billing: must be at least 7 years")]
    [InlineData("Retention:OperationalMetadata=400.00:00:00", "Retention:OperationalMetadata: must be between 1 day and 365 days")]
    [InlineData("Retention:DeletedAccountGrace=45.00:00:00", "Retention:DeletedAccountGrace: must be between 0 and 30 days")]
    [InlineData("Retention:RequestMetadata=00:10:00", "Retention:RequestMetadata: must be between")]
    public async Task A_retention_outside_its_legal_bounds_is_refused_at_start_and_the_refusal_is_audited(string setting, string message)
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var (migrated, _, migrateErrors) = await SluiceProcess.RunAsync(["migrate", "--data-dir", database.Directory]);
        Assert.True(migrated == ExitCodes.Success, migrateErrors);

        var (exitCode, _, stderr) = await SluiceProcess.RunAsync(
            ["serve", "--urls", $"http://127.0.0.1:{SluiceProcess.FreePort()}", "--data-dir", database.Directory, "--set", setting]);

        Assert.Equal(ExitCodes.Failure, exitCode);
        Assert.Contains($"error: invalid setting {message}", stderr, StringComparison.Ordinal);
        await using var db = database.CreateContext();
        var refused = await db.AuditEntries.SingleAsync(e => e.Action == "config.refused");
        Assert.Equal("refused", refused.Outcome);
        Assert.Equal($"settings:{setting.Split('=')[0]}", refused.Target);
    }
}
