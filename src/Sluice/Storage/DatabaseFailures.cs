using System.Net.Sockets;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Sluice.Storage;

/// <summary>
/// The one place that decides whether a failure means "the database is unavailable right now" (a stopped or
/// restarting server, a refused or reset connection, a timeout, an exhausted pool, a busy or locked SQLite file), as
/// opposed to a bug or bad data. Callers answer the first with 503 and <c>Retry-After</c>
/// (<see cref="Hosting.ApiProblemHandler"/> on <c>/api</c>, <see cref="Gateway.OpenAiError.DatabaseUnavailable"/> on
/// <c>/v1</c>) and retry it in background work; the second stays a failure.
/// </summary>
public static class DatabaseFailures
{
    /// <summary>What a client is told to wait before retrying a request refused during an outage.</summary>
    public static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(5);

    public static bool IsUnavailable(Exception exception)
    {
        for (var depth = 0; depth < 16 && exception is not null; depth++)
        {
            switch (exception)
            {
                case PostgresException postgres:
                    // Also what PostgreSQL calls transient: a deadlock victim, a serialization failure, a lock not available
                    // (bursts of them follow an outage, when every replica's postings and settlements resume at once).
                    // Its transaction rolled back whole, so the answer is "retry", not a server error.
                    return IsUnavailableState(postgres.SqlState) || postgres.IsTransient;
                case NpgsqlException npgsql when npgsql.IsTransient:
                    return true; // connection refused or reset, timeout, pool exhausted
                case SqliteException sqlite:
                    return sqlite.SqliteErrorCode is 5 /* BUSY */ or 6 /* LOCKED */ or 10 /* IOERR */ or 14 /* CANTOPEN */;
                case SocketException or TimeoutException:
                    return true;
                case ObjectDisposedException disposed when ThrownInsideNpgsql(disposed):
                    // A pooled connection that the outage broke, its internals disposed under a command that was still
                    // using it (npgsql/npgsql#6415): the database connection is what failed, not Sluice.
                    return true;
                case AggregateException aggregate when aggregate.InnerExceptions.Count > 0:
                    return aggregate.InnerExceptions.All(IsUnavailable);
            }

            exception = exception.InnerException!;
        }

        return false;
    }

    private static bool ThrownInsideNpgsql(Exception exception) =>
        new System.Diagnostics.StackTrace(exception, fNeedFileInfo: false).GetFrames()
            .Any(frame => frame.GetMethod()?.DeclaringType?.Namespace?.StartsWith("Npgsql", StringComparison.Ordinal) == true);

    /// <summary>
    /// SQLSTATE classes that mean the server cannot serve now: 08 connection exception, 53 insufficient resources (too
    /// many connections, disk full), 57P operator intervention (admin or crash shutdown, cannot connect now), 58 system
    /// error (I/O).
    /// </summary>
    private static bool IsUnavailableState(string state) =>
        state.StartsWith("08", StringComparison.Ordinal) || state.StartsWith("53", StringComparison.Ordinal)
        || state.StartsWith("57P", StringComparison.Ordinal) || state.StartsWith("58", StringComparison.Ordinal);
}

/// <summary>
/// When this replica last saw the database unavailable. Work that must not act on a stale view of other replicas
/// (sweeping their leases) waits until the database has been reachable long enough for every live replica to catch up.
/// </summary>
public sealed class DatabaseAvailability(TimeProvider time)
{
    private long _lastFailureTicks = long.MinValue;

    public DateTimeOffset? LastFailure
    {
        get
        {
            var ticks = Interlocked.Read(ref _lastFailureTicks);
            return ticks == long.MinValue ? null : new DateTimeOffset(ticks, TimeSpan.Zero);
        }
    }

    /// <summary>Notes <paramref name="exception"/> if it means the database is unavailable; returns whether it does.</summary>
    public bool Observe(Exception exception)
    {
        if (!DatabaseFailures.IsUnavailable(exception))
        {
            return false;
        }

        Interlocked.Exchange(ref _lastFailureTicks, time.GetUtcNow().UtcTicks);
        return true;
    }

    /// <summary>True when no outage was seen for at least <paramref name="period"/>.</summary>
    public bool StableFor(TimeSpan period) => LastFailure is not { } last || time.GetUtcNow() - last >= period;
}
