using Microsoft.Extensions.Options;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Files;

/// <summary>
/// Rotates the key-encryption key every <see cref="FilesOptions.KeyRotationInterval"/>, so crypto-shredding reaches
/// backups without anyone remembering to: each rotation rewraps every object under the current key, retires the older
/// keys (every copy wrapped under them, backups included, can no longer be opened), then adds a new current key. Keys
/// are retired only one interval after they stopped being current, so no replica can still be wrapping a new file under
/// one. The ring file's modification time is the time of the last rotation; one replica at a time rotates (an advisory
/// lock on PostgreSQL, a lock file beside the ring otherwise), and replicas reread the ring when it changes.
/// </summary>
internal sealed partial class KeyRotationScheduler(
    IServiceScopeFactory scopes, FileStore store, TimeProvider time, IOptions<FilesOptions> options, ILogger<KeyRotationScheduler> logger, Hosting.BackgroundHealth? health = null) : Hosting.SupervisedService(health)
{
    // Arbitrary constant naming "rotate the files key ring" among advisory locks.
    private const long RotationLockId = 0x51_7C_E0_00_00_00_00_03;

    protected override Task RunAsync(CancellationToken stoppingToken) =>
        options.Value.KeyRotationInterval <= TimeSpan.Zero || store.Keys.File is null
            ? Task.CompletedTask
            : PeriodicWork.RunAsync(options.Value.KeyRotationCheckInterval, time, logger, "key rotation", RotateIfDueAsync, stoppingToken, Health);

    /// <summary>Rotates when the ring is older than the interval; true when this call rotated.</summary>
    public async Task<bool> RotateIfDueAsync(CancellationToken cancellationToken)
    {
        if (store.Keys.File is not { } ring || !Due(ring))
        {
            return false;
        }

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        await using var exclusive = await ReplicaLock.TryTakeAsync(db, RotationLockId, ring + ".lock", cancellationToken);
        if (exclusive is null || !Due(ring))
        {
            return false; // another replica is rotating, or just did
        }

        var result = await ActivatorUtilities.CreateInstance<KeyRotation>(scope.ServiceProvider)
            .RotateAsync(addKey: false, retireOld: true, cancellationToken, actor: "system");
        store.Keys.AddKey();
        File.SetLastWriteTimeUtc(ring, time.GetUtcNow().UtcDateTime); // the rotation's time, on the clock that decides the next
        Rotated(logger, result.Rewrapped, result.Retired, store.Keys.CurrentId);
        return true;
    }

    private bool Due(string ring) => time.GetUtcNow().UtcDateTime - File.GetLastWriteTimeUtc(ring) >= options.Value.KeyRotationInterval;

    [LoggerMessage(61, LogLevel.Information, "Rotated the files key ring: {Rewrapped} data keys rewrapped, older keys retired: {Retired}; current key {KeyId}")]
    private static partial void Rotated(ILogger logger, int rewrapped, bool retired, string keyId);
}
