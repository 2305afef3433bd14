using Microsoft.EntityFrameworkCore;
using Sluice.Storage;

namespace Sluice.Hosting;

/// <summary>
/// "One replica at a time" for background work: a session advisory lock on PostgreSQL (replicas share the database),
/// an exclusive lock file otherwise (SQLite replicas share a host). Null when another replica holds it.
/// </summary>
internal static class ReplicaLock
{
    public static async Task<IAsyncDisposable?> TryTakeAsync(SluiceDbContext db, long lockId, string lockFile, CancellationToken cancellationToken)
    {
        if (db.Database.GetDbConnection() is Npgsql.NpgsqlConnection)
        {
            await db.Database.OpenConnectionAsync(cancellationToken);
            var taken = await db.Database.SqlQuery<bool>($"SELECT pg_try_advisory_lock({lockId}) AS \"Value\"").SingleAsync(cancellationToken);
            return taken ? new Releaser(async () => await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_unlock({lockId})")) : null;
        }

        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(lockFile))!);
            var stream = new FileStream(lockFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
            return new Releaser(() => stream.DisposeAsync());
        }
        catch (IOException)
        {
            return null;
        }
    }

    private sealed class Releaser(Func<ValueTask> release) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => release();
    }
}
