using Sluice.Compute.Protocol;

namespace Sluice.Compute.Serving;

/// <summary>
/// Tells a machine's agent that its desired task set changed, so it heartbeats now instead of at the end of its
/// interval (<see cref="AgentPaths.Wake"/>): a replica placed for a request waiting at zero starts within a round trip.
/// Best effort and off the caller's path: the next regular heartbeat carries the change anyway.
/// </summary>
public sealed class MachineNudger(IServiceScopeFactory scopes, IMachineTransport transport, ILogger<MachineNudger> logger)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(3);

    /// <summary>Sends the nudge in the background; returns at once.</summary>
    public void Nudge(Guid machineId) => _ = Task.Run(() => NudgeAsync(machineId));

    /// <summary>Sends the nudge; true when the agent took it.</summary>
    public async Task<bool> NudgeAsync(Guid machineId)
    {
        try
        {
            MachineEndpoint? endpoint;
            await using (var scope = scopes.CreateAsyncScope())
            {
                endpoint = await scope.ServiceProvider.GetRequiredService<MachineEndpoints>().FindAsync(machineId, CancellationToken.None);
            }

            if (endpoint is null)
            {
                return false;
            }

            using var timeout = new CancellationTokenSource(Timeout);
            using var request = new HttpRequestMessage(HttpMethod.Post, MachineTransportPaths.WakeUri(endpoint));
            using var response = await transport.Invoker(endpoint).SendAsync(request, timeout.Token);
            return response.IsSuccessStatusCode;
        }
        catch (Exception ex)
        {
            // An unreachable agent, a stopped database: the regular heartbeat still brings the change.
            ComputeLog.NudgeFailed(logger, machineId, ex.GetType().Name);
            return false;
        }
    }
}
