using System.Collections.Concurrent;

namespace Sluice.Deployments;

/// <summary>
/// The load this server replica sees on deployments, in memory: requests in flight to each replica (routing enters and
/// leaves) and requests waiting for a replica (the cold-start queue), plus when the last request arrived. Routing
/// writes it on every request; the autoscaler reads it (and shares it with the other server replicas). Lock-free: one
/// counter object per replica and per deployment, made once.
/// </summary>
public sealed class DeploymentLoad(TimeProvider time)
{
    private readonly ConcurrentDictionary<Guid, DeploymentCounters> _deployments = new();
    private readonly ConcurrentDictionary<Guid, ReplicaCounter> _replicas = new();
    private int _waitingTotal;

    /// <summary>Whether any request on this server waits for a replica of any deployment (the directory then refreshes often).</summary>
    public bool AnyWaiting => Volatile.Read(ref _waitingTotal) > 0;

    /// <summary>A request was sent to <paramref name="replicaId"/>; call <see cref="Leave"/> when it ends, whatever the outcome.</summary>
    public void Enter(Guid deploymentId, Guid replicaId)
    {
        var deployment = Deployment(deploymentId);
        Interlocked.Increment(ref deployment.InFlight);
        Volatile.Write(ref deployment.LastRequestTicks, time.GetUtcNow().UtcTicks);
        Interlocked.Increment(ref _replicas.GetOrAdd(replicaId, _ => new ReplicaCounter()).InFlight);
    }

    public void Leave(Guid deploymentId, Guid replicaId)
    {
        Interlocked.Decrement(ref Deployment(deploymentId).InFlight);
        if (_replicas.TryGetValue(replicaId, out var replica))
        {
            Interlocked.Decrement(ref replica.InFlight);
        }
    }

    /// <summary>A request started waiting for a replica of <paramref name="deploymentId"/> (none ready); call <see cref="Dequeued"/> when it stops waiting.</summary>
    public void Queued(Guid deploymentId)
    {
        var deployment = Deployment(deploymentId);
        Interlocked.Increment(ref deployment.Waiting);
        Interlocked.Increment(ref _waitingTotal);
        Volatile.Write(ref deployment.LastRequestTicks, time.GetUtcNow().UtcTicks);
    }

    public void Dequeued(Guid deploymentId)
    {
        Interlocked.Decrement(ref Deployment(deploymentId).Waiting);
        Interlocked.Decrement(ref _waitingTotal);
    }

    /// <summary>Requests this server has in flight to <paramref name="replicaId"/> (for least-outstanding balancing).</summary>
    public int InFlight(Guid replicaId) => _replicas.TryGetValue(replicaId, out var replica) ? Volatile.Read(ref replica.InFlight) : 0;

    /// <summary>Requests waiting for a replica of <paramref name="deploymentId"/> on this server.</summary>
    public int Waiting(Guid deploymentId) => _deployments.TryGetValue(deploymentId, out var d) ? Volatile.Read(ref d.Waiting) : 0;

    /// <summary>Every deployment this server has seen: requests in flight, waiting, and the last request's arrival.</summary>
    public IReadOnlyList<DeploymentLoadSample> Snapshot()
    {
        var samples = new List<DeploymentLoadSample>(_deployments.Count);
        foreach (var (id, d) in _deployments)
        {
            var last = Volatile.Read(ref d.LastRequestTicks);
            samples.Add(new DeploymentLoadSample(id, Volatile.Read(ref d.InFlight), Volatile.Read(ref d.Waiting),
                last == 0 ? null : new DateTimeOffset(last, TimeSpan.Zero)));
        }

        return samples;
    }

    /// <summary>Drops a replica's counter once it is stopped (nothing is in flight to it any more).</summary>
    public void ForgetReplica(Guid replicaId) => _replicas.TryRemove(replicaId, out _);

    private DeploymentCounters Deployment(Guid id) => _deployments.GetOrAdd(id, _ => new DeploymentCounters());

    private sealed class DeploymentCounters
    {
        public int InFlight;
        public int Waiting;
        public long LastRequestTicks;
    }

    private sealed class ReplicaCounter
    {
        public int InFlight;
    }
}

/// <param name="DeploymentId">The deployment.</param>
/// <param name="InFlight">Requests this server has in flight to its replicas.</param>
/// <param name="Waiting">Requests this server holds waiting for a replica (the cold-start queue).</param>
/// <param name="LastRequestAt">When the last request for it arrived here; null if none yet.</param>
public sealed record DeploymentLoadSample(Guid DeploymentId, int InFlight, int Waiting, DateTimeOffset? LastRequestAt);
