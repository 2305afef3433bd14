using System.Net;
using System.Net.Sockets;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.Audit;

/// <summary>Who is acting in the current scope, as the audit log names them: pseudonymous ids only.</summary>
public sealed class AuditActor(IHttpContextAccessor? http = null)
{
    /// <summary>Set by non-HTTP callers: <c>cli</c> for the admin commands, <c>system</c> for background work.</summary>
    public string? Fixed { get; set; }

    public string Id
    {
        get
        {
            if (Fixed is not null)
            {
                return Fixed;
            }

            if (http?.HttpContext is { } context)
            {
                var caller = Caller.From(context.User);
                return caller.KeyId is { } key ? $"key:{key}" : caller.UserId is { } user ? $"user:{user}" : "anonymous";
            }

            return "system";
        }
    }

    /// <summary>The client's network (IPv4 /24, IPv6 /48): enough to investigate, not enough to single out a person.</summary>
    public string? SourceNetwork => http?.HttpContext?.Connection.RemoteIpAddress is { } address ? Network(address) : null;

    public static string Network(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        var bytes = address.GetAddressBytes();
        var (keep, prefix) = address.AddressFamily == AddressFamily.InterNetwork ? (3, 24) : (6, 48);
        for (var i = keep; i < bytes.Length; i++)
        {
            bytes[i] = 0;
        }

        return $"{new IPAddress(bytes)}/{prefix}";
    }
}

/// <summary>
/// Appends entries to the audit log in the same transaction as the change they describe: <see cref="Record"/> adds
/// the entry to the unit of work, and <see cref="SluiceDbContext"/> numbers it when the work is saved.
/// </summary>
public sealed class AuditLog(SluiceDbContext db, AuditActor actor, TimeProvider time)
{
    public const string Success = "success";

    public const string Refused = "refused";

    public void Record(string action, string target, Guid? organizationId = null, string? actorOverride = null) =>
        Add(action, target, organizationId, actorOverride, Success);

    /// <summary>
    /// Records a refused action on its own: whatever the unit of work held is discarded (a refusal changes nothing),
    /// and the entry is saved at once, before the caller throws its error.
    /// </summary>
    public async Task RefuseAsync(string action, string target, Guid? organizationId, CancellationToken cancellationToken, string? actorOverride = null)
    {
        db.ChangeTracker.Clear();
        Add(action, target, organizationId, actorOverride, Refused);
        await db.SaveChangesAsync(cancellationToken);
    }

    private void Add(string action, string target, Guid? organizationId, string? actorOverride, string outcome)
    {
        db.AuditEntries.Add(new AuditEntry
        {
            // A distinct placeholder per pending entry (the key must be unique while tracked); numbered when saved.
            Seq = -1 - db.ChangeTracker.Entries<AuditEntry>().Count(e => e.State == Microsoft.EntityFrameworkCore.EntityState.Added),
            Time = time.GetUtcNow(),
            Actor = actorOverride ?? actor.Id,
            OrganizationId = organizationId,
            Action = action,
            Target = target.Length > 128 ? target[..128] : target,
            Outcome = outcome,
            SourceNetwork = actor.SourceNetwork,
        });
    }
}
