using Npgsql;
using Sluice.Storage;

namespace Sluice.Tests.Storage;

/// <summary>Which database failures are "unavailable, retry" (503 with Retry-After) rather than a server error.</summary>
public sealed class DatabaseFailuresTests
{
    [Theory]
    [InlineData("08006", true)] // connection failure
    [InlineData("57P01", true)] // administrator shutdown
    [InlineData("53300", true)] // too many connections
    [InlineData("40P01", true)] // deadlock victim: rolled back, retrying succeeds
    [InlineData("40001", true)] // serialization failure
    [InlineData("55P03", true)] // lock not available
    [InlineData("23505", false)] // a unique violation is a bug or a conflict, never an outage
    [InlineData("42P01", false)] // undefined table
    public void Transient_postgres_errors_are_unavailable_and_others_are_not(string sqlState, bool unavailable)
    {
        var error = new PostgresException("message", "ERROR", "ERROR", sqlState);
        Assert.Equal(unavailable, DatabaseFailures.IsUnavailable(error));
        Assert.Equal(unavailable, DatabaseFailures.IsUnavailable(new InvalidOperationException("wrapped by EF", error)));
    }

    [Fact]
    public async Task A_disposed_object_inside_the_driver_is_an_outage_and_one_in_sluice_is_not()
    {
        // What a connection broken by an outage throws at the command still using it (npgsql/npgsql#6415): thrown from
        // inside Npgsql. Disposing a connection and using it again throws the same way, from the same place.
        var connection = new NpgsqlConnection("Host=127.0.0.1;Port=1;Timeout=1");
        await connection.DisposeAsync();
        var inDriver = await Assert.ThrowsAnyAsync<ObjectDisposedException>(() => connection.OpenAsync());
        Assert.True(DatabaseFailures.IsUnavailable(inDriver));
        Assert.True(DatabaseFailures.IsUnavailable(new InvalidOperationException("wrapped by EF", inDriver)));

        var inSluice = Assert.ThrowsAny<ObjectDisposedException>(() =>
        {
            var gate = new SemaphoreSlim(1);
            gate.Dispose();
            gate.Wait();
        });
        Assert.False(DatabaseFailures.IsUnavailable(inSluice));
    }
}
