using Sluice.Compute.Protocol;

namespace Sluice.Compute;

/// <summary>Drops telemetry: registered only when nothing stores it (TryAddSingleton), so the heartbeat works alone.</summary>
internal sealed class NullTelemetrySink : ITelemetrySink
{
    public void Record(string machineId, TelemetrySample sample, DateTimeOffset receivedAt)
    {
    }
}
