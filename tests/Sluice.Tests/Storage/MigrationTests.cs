using Microsoft.EntityFrameworkCore;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Storage;

/// <summary>The hand-written migrations, proven against the EF model on each provider.</summary>
public abstract class MigrationTests(DatabaseProvider provider)
{
    [Fact]
    public async Task Migrating_an_empty_database_yields_exactly_the_schema_the_model_describes()
    {
        await using var migrated = await TestDatabase.CreateAsync(provider);
        await using var created = await TestDatabase.CreateAsync(provider);
        await using (var context = migrated.CreateContext())
        {
            await new SchemaMigrator(context, migrated.Target).MigrateAsync(CancellationToken.None);
        }

        await using (var context = created.CreateContext())
        {
            Assert.True(await context.Database.EnsureCreatedAsync());
        }

        var expected = await SchemaReader.ReadAsync(created);
        var actual = await SchemaReader.ReadAsync(migrated);
        Assert.Contains(expected, fact => fact.Contains("users", StringComparison.Ordinal));
        Assert.Equal(expected, actual);
    }

    [Fact]
    public async Task Migrating_again_applies_nothing_and_reports_the_schema_current()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var context = database.CreateContext();
        var migrator = new SchemaMigrator(context, database.Target);

        var (firstBefore, firstAfter) = await migrator.MigrateAsync(CancellationToken.None);
        var (secondBefore, secondAfter) = await migrator.MigrateAsync(CancellationToken.None);

        Assert.Equal(firstBefore.Known.Count, firstBefore.Pending.Count);
        Assert.True(firstAfter.IsCurrent);
        Assert.Empty(secondBefore.Pending);
        Assert.True(secondAfter.IsCurrent);
        Assert.Equal(firstAfter.LatestKnown, secondAfter.Version);
    }

    [Fact]
    public async Task A_schema_newer_than_the_binary_is_refused_and_left_untouched()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using (var context = database.CreateContext())
        {
            await new SchemaMigrator(context, database.Target).MigrateAsync(CancellationToken.None);
        }

        await database.ExecuteAsync(
            "INSERT INTO \"__EFMigrationsHistory\" (\"MigrationId\", \"ProductVersion\") VALUES ('29990101000000_FromTheFuture', '99.0.0')");

        await using var stale = database.CreateContext();
        var error = await Assert.ThrowsAsync<SchemaTooNewException>(
            () => new SchemaMigrator(stale, database.Target).MigrateAsync(CancellationToken.None));
        Assert.Contains("29990101000000_FromTheFuture", error.Message, StringComparison.Ordinal);
        Assert.Equal(stale.Database.GetMigrations().Count() + 1L, Convert.ToInt64(await database.ScalarAsync("SELECT count(*) FROM \"__EFMigrationsHistory\""), System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task Replicas_migrating_at_the_same_time_apply_each_migration_once()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        var replicas = Enumerable.Range(0, 3).Select(async _ =>
        {
            await using var context = database.CreateContext();
            var (_, after) = await new SchemaMigrator(context, database.Target).MigrateAsync(CancellationToken.None);
            return after;
        });

        var results = await Task.WhenAll(replicas);

        Assert.All(results, status => Assert.True(status.IsCurrent));
        await using var check = database.CreateContext();
        Assert.Equal(check.Database.GetMigrations().Count(), (await check.Database.GetAppliedMigrationsAsync()).Count());
    }
}

public sealed class SqliteMigrationTests() : MigrationTests(DatabaseProvider.Sqlite);

public sealed class PostgresMigrationTests() : MigrationTests(DatabaseProvider.Postgres);

public sealed class PostgresDatabaseCreationTests
{
    [Fact]
    public async Task Migrating_a_database_that_does_not_exist_yet_creates_it()
    {
        var name = $"sluice_test_{Guid.NewGuid():N}";
        var admin = new Npgsql.NpgsqlConnectionStringBuilder(Postgres.AdminConnectionString()) { Database = name, Pooling = false };
        var target = DatabaseTarget.Resolve(admin.ConnectionString, "unused");
        try
        {
            var options = new Microsoft.EntityFrameworkCore.DbContextOptionsBuilder<SluiceDbContext>();
            StorageModule.ConfigureProvider(options, target, TimeSpan.FromSeconds(30));
            await using var context = new SluiceDbContext(options.Options);

            var (before, after) = await new SchemaMigrator(context, target).MigrateAsync(CancellationToken.None);

            Assert.Empty(before.Applied);
            Assert.True(after.IsCurrent);
        }
        finally
        {
            Npgsql.NpgsqlConnection.ClearAllPools();
            await Postgres.DropDatabaseAsync(name);
        }
    }
}
