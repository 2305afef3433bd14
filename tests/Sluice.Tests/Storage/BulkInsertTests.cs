using Microsoft.EntityFrameworkCore;
using Sluice.Gateway;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Storage;

/// <summary>Rows written in bulk read back through EF exactly as if SaveChanges had written them.</summary>
public abstract class BulkInsertTests(DatabaseProvider provider)
{
    [Fact]
    public async Task Bulk_written_rows_read_back_field_for_field_nulls_included()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using (var migrate = database.CreateContext())
        {
            await new SchemaMigrator(migrate, database.Target).MigrateAsync(CancellationToken.None);
        }

        var started = new DateTimeOffset(2026, 11, 22, 10, 30, 15, 123, TimeSpan.FromHours(2)).AddTicks(4560);
        var rows = Enumerable.Range(0, 1200).Select(i => new UsageEvent
        {
            Id = Guid.CreateVersion7(),
            RequestId = $"req_{i}",
            OrganizationId = i % 2 == 0 ? Guid.NewGuid() : null,
            KeyId = Guid.NewGuid(),
            Endpoint = "chat.completions",
            Model = i % 3 == 0 ? null : "m",
            RouteId = Guid.NewGuid(),
            Status = 200 + i,
            ErrorType = i % 5 == 0 ? "upstream_error" : null,
            Stream = i % 2 == 1,
            Attempts = 1,
            PromptTokens = i,
            CompletionTokens = 2L * i,
            CachedTokens = 3,
            RequestBytes = long.MaxValue - i,
            ResponseBytes = 7,
            LatencyMicros = 123,
            TimeToFirstTokenMicros = i % 4 == 0 ? null : 99,
            CostMicros = 5,
            BatchId = i % 7 == 0 ? Guid.NewGuid() : null,
            StartedAt = started.AddSeconds(i),
        }).ToList();

        await using (var db = database.CreateContext())
        {
            await BulkInsert.InsertAsync(db, rows, CancellationToken.None);
        }

        await using var read = database.CreateContext();
        var stored = await read.UsageEvents.AsNoTracking().ToDictionaryAsync(e => e.Id);
        Assert.Equal(rows.Count, stored.Count);
        foreach (var row in rows)
        {
            var back = stored[row.Id];
            Assert.Equivalent(row, back, strict: true); // the time to the microsecond, as an instant
        }

        var org = rows[0].OrganizationId;
        Assert.Single(await read.UsageEvents.Where(e => e.OrganizationId == org).ToListAsync()); // ids compare as EF writes them
        Assert.Equal(600, await read.UsageEvents.CountAsync(e => e.StartedAt >= started.AddSeconds(600)));
    }

    [Fact]
    public async Task A_batch_that_fails_part_way_leaves_no_rows_behind()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using (var migrate = database.CreateContext())
        {
            await new SchemaMigrator(migrate, database.Target).MigrateAsync(CancellationToken.None);
        }

        var duplicate = Guid.CreateVersion7();
        var rows = Enumerable.Range(0, 10).Select(i => new UsageEvent
        {
            Id = i is 3 or 7 ? duplicate : Guid.CreateVersion7(),
            RequestId = $"req_{i}",
            Endpoint = "chat.completions",
            StartedAt = DateTimeOffset.UtcNow,
        }).ToList();

        await using (var db = database.CreateContext())
        {
            await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => BulkInsert.InsertAsync(db, rows, CancellationToken.None));
        }

        await using var read = database.CreateContext();
        Assert.Equal(0, await read.UsageEvents.CountAsync());
    }

    [Fact]
    public async Task A_retried_batch_skips_the_rows_already_stored_and_writes_the_rest_once()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using (var migrate = database.CreateContext())
        {
            await new SchemaMigrator(migrate, database.Target).MigrateAsync(CancellationToken.None);
        }

        var rows = Enumerable.Range(0, 20).Select(i => new UsageEvent
        {
            Id = Guid.CreateVersion7(),
            RequestId = $"req_{i}",
            Endpoint = "chat.completions",
            CostMicros = i,
            StartedAt = DateTimeOffset.UtcNow,
        }).ToList();

        // The first write committed although its caller never heard back (the connection broke): the retry carries
        // those rows again, with new ones.
        await using (var db = database.CreateContext())
        {
            await BulkInsert.InsertAsync(db, rows[..12], CancellationToken.None);
        }

        await using (var db = database.CreateContext())
        {
            await BulkInsert.InsertAsync(db, rows, CancellationToken.None, skipExisting: true);
        }

        await using var read = database.CreateContext();
        Assert.Equal(20, await read.UsageEvents.CountAsync());
        Assert.Equal(rows.Sum(r => r.CostMicros), await read.UsageEvents.SumAsync(e => e.CostMicros));
    }
}

public sealed class SqliteBulkInsertTests() : BulkInsertTests(DatabaseProvider.Sqlite);

public sealed class PostgresBulkInsertTests() : BulkInsertTests(DatabaseProvider.Postgres);
