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
}
