using Sluice.Compute.Protocol;

namespace Sluice.Compute;

/// <summary>
/// Where the heartbeat endpoint hands a machine's telemetry. It must not block or fail the heartbeat: samples are
/// buffered and written in batches, and dropped (counted) when the buffer is full.
/// </summary>
public interface ITelemetrySink
{
    void Record(string machineId, TelemetrySample sample, DateTimeOffset receivedAt);
}
