using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Crypto;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Identity;

public abstract class OperatorBootstrapTests(DatabaseProvider provider)
{
    [Fact]
    public async Task The_first_start_creates_one_operator_stores_only_a_bcrypt_hash_and_shows_the_password_once()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var first = new SluiceFactory(database, new Dictionary<string, string?> { ["Identity:OperatorEmail"] = " Admin@Example.COM " });
        first.CreateClient().Dispose();

        var (_, account, secret) = Assert.Single(first.Credentials.Written);
        Assert.Equal("admin@example.com", account);
        await using var db = database.CreateContext();
        var operatorUser = await db.Users.SingleAsync(u => u.IsPlatformOperator);
        Assert.Equal("admin@example.com", operatorUser.Email);
        Assert.StartsWith("$2b$10$", operatorUser.PasswordHash, StringComparison.Ordinal);
        Assert.Equal(60, operatorUser.PasswordHash.Length);
        Assert.True(Bcrypt.Verify(secret, operatorUser.PasswordHash));
        Assert.False(Bcrypt.Verify(secret + "x", operatorUser.PasswordHash));

        await using var second = new SluiceFactory(database);
        second.CreateClient().Dispose();

        Assert.Empty(second.Credentials.Written);
        Assert.Equal(1, await db.Users.CountAsync());
    }

    [Fact]
    public async Task Replicas_starting_together_create_one_operator_and_show_one_credential()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using (var context = database.CreateContext())
        {
            await new SchemaMigrator(context, database.Target).MigrateAsync(CancellationToken.None);
        }

        var replicas = Enumerable.Range(0, 3).Select(_ => new SluiceFactory(database)).ToList();
        try
        {
            await Task.WhenAll(replicas.Select(r => Task.Run(() => r.CreateClient().Dispose())));

            Assert.Equal(1, replicas.Sum(r => r.Credentials.Written.Count));
            await using var db = database.CreateContext();
            Assert.Equal(1, await db.Users.CountAsync(u => u.IsPlatformOperator));
        }
        finally
        {
            foreach (var replica in replicas)
            {
                await replica.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Timestamps_round_trip_in_utc_with_microsecond_precision()
    {
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database);
        sluice.CreateClient().Dispose();
        var when = new DateTimeOffset(2026, 11, 22, 10, 30, 15, TimeSpan.FromHours(2)).AddTicks(1234560);

        await using (var db = sluice.Services.CreateScope().ServiceProvider.GetRequiredService<SluiceDbContext>())
        {
            db.Users.Add(new Sluice.Identity.User { Id = Guid.NewGuid(), Email = "t@example.com", PasswordHash = "$2b$", CreatedAt = when });
            await db.SaveChangesAsync();
        }

        await using var read = database.CreateContext();
        var stored = await read.Users.SingleAsync(u => u.Email == "t@example.com");
        Assert.Equal(when.UtcDateTime, stored.CreatedAt.UtcDateTime);
        Assert.Equal(1, await read.Users.CountAsync(u => u.CreatedAt > when.AddSeconds(-1) && u.Email == "t@example.com"));
    }
}

public sealed class SqliteOperatorBootstrapTests() : OperatorBootstrapTests(DatabaseProvider.Sqlite);

public sealed class PostgresOperatorBootstrapTests() : OperatorBootstrapTests(DatabaseProvider.Postgres);
