using Microsoft.EntityFrameworkCore;
using Sluice.Audit;
using Sluice.Storage;

namespace Sluice.Files;

/// <summary>
/// Key-encryption-key rotation: add a new current KEK, rewrap every stored file's and batch journal's data key under it
/// (the ciphertext is untouched), and, when asked, retire the old KEKs. Once a KEK is retired, every copy of a file
/// wrapped under it (a backup, a snapshot) can no longer be read.
/// </summary>
public sealed class KeyRotation(FileStore store, SluiceDbContext db, AuditLog audit)
{
    public sealed record Result(int Rewrapped, int AlreadyCurrent, int Unreadable, bool Retired, string CurrentKey);

    public async Task<Result> RotateAsync(bool addKey, bool retireOld, CancellationToken cancellationToken, string actor = "cli")
    {
        if (addKey)
        {
            store.Keys.AddKey();
        }

        var owners = await db.Files.AsNoTracking().Select(f => new { f.Id, f.OrganizationId }).ToDictionaryAsync(f => f.Id, f => f.OrganizationId, cancellationToken);
        var batchOwners = await db.Batches.AsNoTracking().Select(b => new { b.Id, b.OrganizationId }).ToDictionaryAsync(b => b.Id, b => b.OrganizationId, cancellationToken);
        int rewrapped = 0, current = 0, unreadable = 0;
        foreach (var (id, isJournal, path) in store.Objects().ToList())
        {
            var found = isJournal ? batchOwners.TryGetValue(id, out var org) : owners.TryGetValue(id, out org);
            if (!found)
            {
                continue; // an orphan; the sweeper shreds it
            }

            try
            {
                var binding = isJournal ? Batches.BatchJournal.Binding(id, org) : FileStore.FileBinding(id, org);
                _ = EncryptedFile.Rewrap(path, store.Keys, binding) ? rewrapped++ : current++;
            }
            catch (Exception ex) when (ex is System.Security.Cryptography.CryptographicException or FileNotFoundException)
            {
                unreadable++;
            }
        }

        var retire = retireOld && unreadable == 0 && store.Keys.Count > 1;
        if (retire)
        {
            store.Keys.RetireOldKeys();
        }

        audit.Record("files.kek_rotate", $"current:{store.Keys.CurrentId} rewrapped:{rewrapped} retired:{retire}", actorOverride: actor);
        await db.SaveChangesAsync(cancellationToken);
        return new Result(rewrapped, current, unreadable, retire, store.Keys.CurrentId);
    }
}
