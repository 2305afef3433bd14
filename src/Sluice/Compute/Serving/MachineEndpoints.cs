using Microsoft.EntityFrameworkCore;
using Sluice.Compute.Protocol;
using Sluice.Crypto;
using Sluice.Storage;

namespace Sluice.Compute.Serving;

/// <summary>
/// How the server reaches a machine's serving endpoint: its advertised URL, the certificate fingerprint pinned at join
/// and the serving token, opened from its sealed copy. A machine that can no longer serve (credential revoked,
/// decommissioned, unknown) has no endpoint, so nothing is sent to it.
/// </summary>
public sealed class MachineEndpoints(SluiceDbContext db, SecretBox secrets)
{
    public async Task<MachineEndpoint?> FindAsync(Guid machineId, CancellationToken cancellationToken)
    {
        var machine = await db.Machines.AsNoTracking().SingleOrDefaultAsync(m => m.Id == machineId, cancellationToken);
        if (machine is null || machine.CredentialRevokedAt is not null || machine.State == MachineStates.Decommissioned)
        {
            return null;
        }

        return new MachineEndpoint(
            machine.Id.ToString(), new Uri(machine.ServingUrl), machine.CertificateSha256, AgentExchange.OpenServingToken(secrets, machine));
    }
}
