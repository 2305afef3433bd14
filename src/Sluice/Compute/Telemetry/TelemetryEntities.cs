using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Sluice.Compute.Telemetry;

// Machine telemetry: figures only (never a command line, an environment, a task's output). Raw samples are keyed by
// (machine_id, at), so a heartbeat retried by its agent, or a batch retried by the writer, lands once; indexed by at for
// time-ranged reads, rollups and retention. On PostgreSQL the two raw tables are range-partitioned by day
// (TelemetryPartitions), so retention drops whole days. Hourly rollups keep min/avg/max per machine and GPU per hour.

/// <summary>One telemetry sample of one machine: its aggregates (CPU, load, memory, disk).</summary>
public sealed class MachineTelemetrySample
{
    public required string MachineId { get; init; }

    /// <summary>When the agent took the sample (the server's receive time when the agent's clock is off).</summary>
    public DateTimeOffset At { get; init; }

    public double? CpuPercent { get; init; }
    public double? Load1 { get; init; }
    public long? MemoryUsedBytes { get; init; }
    public long? MemoryTotalBytes { get; init; }
    public long? DiskUsedBytes { get; init; }
    public long? DiskTotalBytes { get; init; }

    /// <summary>How many GPUs the sample reported.</summary>
    public int GpuCount { get; init; }
}

/// <summary>One GPU's figures in one sample.</summary>
public sealed class GpuTelemetrySample
{
    public required string MachineId { get; init; }
    public DateTimeOffset At { get; init; }
    public int GpuIndex { get; init; }

    /// <summary>nvidia-smi's <c>GPU-…</c> (or <c>MIG-…</c>) identifier; null when the agent sent anything else.</summary>
    public string? GpuUuid { get; init; }

    public long? MemoryUsedMib { get; init; }
    public long? MemoryTotalMib { get; init; }
    public double? UtilizationPercent { get; init; }
    public double? TemperatureC { get; init; }
    public double? PowerDrawW { get; init; }
    public long? XidErrors { get; init; }
    public long? EccErrors { get; init; }
}

/// <summary>Min/avg/max of one machine's samples in one hour.</summary>
public sealed class MachineTelemetryHour
{
    public required string MachineId { get; init; }
    public DateTimeOffset Hour { get; init; }
    public int Samples { get; init; }
    public double? CpuPercentMin { get; init; }
    public double? CpuPercentAvg { get; init; }
    public double? CpuPercentMax { get; init; }
    public double? Load1Min { get; init; }
    public double? Load1Avg { get; init; }
    public double? Load1Max { get; init; }
    public long? MemoryUsedBytesMin { get; init; }
    public long? MemoryUsedBytesAvg { get; init; }
    public long? MemoryUsedBytesMax { get; init; }
    public long? MemoryTotalBytes { get; init; }
    public long? DiskUsedBytesMin { get; init; }
    public long? DiskUsedBytesAvg { get; init; }
    public long? DiskUsedBytesMax { get; init; }
    public long? DiskTotalBytes { get; init; }
    public int GpuCountMax { get; init; }
}

/// <summary>Min/avg/max of one GPU's samples in one hour; error counters as their highest value.</summary>
public sealed class GpuTelemetryHour
{
    public required string MachineId { get; init; }
    public DateTimeOffset Hour { get; init; }
    public int GpuIndex { get; init; }
    public int Samples { get; init; }
    public long? MemoryUsedMibMin { get; init; }
    public long? MemoryUsedMibAvg { get; init; }
    public long? MemoryUsedMibMax { get; init; }
    public long? MemoryTotalMib { get; init; }
    public double? UtilizationPercentMin { get; init; }
    public double? UtilizationPercentAvg { get; init; }
    public double? UtilizationPercentMax { get; init; }
    public double? TemperatureCMin { get; init; }
    public double? TemperatureCAvg { get; init; }
    public double? TemperatureCMax { get; init; }
    public double? PowerDrawWMin { get; init; }
    public double? PowerDrawWAvg { get; init; }
    public double? PowerDrawWMax { get; init; }
    public long? XidErrorsMax { get; init; }
    public long? EccErrorsMax { get; init; }
}

internal static class TelemetryTables
{
    public const string MachineSamples = "machine_telemetry_samples";
    public const string GpuSamples = "gpu_telemetry_samples";
    public const string MachineHours = "machine_telemetry_hours";
    public const string GpuHours = "gpu_telemetry_hours";
    public const int MachineIdLength = 64;
    public const int GpuUuidLength = 64;
}

internal sealed class MachineTelemetrySampleConfiguration : IEntityTypeConfiguration<MachineTelemetrySample>
{
    public void Configure(EntityTypeBuilder<MachineTelemetrySample> builder)
    {
        builder.ToTable(TelemetryTables.MachineSamples);
        builder.HasKey(s => new { s.MachineId, s.At });
        builder.Property(s => s.MachineId).HasMaxLength(TelemetryTables.MachineIdLength);
        builder.HasIndex(s => s.At);
    }
}

internal sealed class GpuTelemetrySampleConfiguration : IEntityTypeConfiguration<GpuTelemetrySample>
{
    public void Configure(EntityTypeBuilder<GpuTelemetrySample> builder)
    {
        builder.ToTable(TelemetryTables.GpuSamples);
        builder.HasKey(s => new { s.MachineId, s.At, s.GpuIndex });
        builder.Property(s => s.MachineId).HasMaxLength(TelemetryTables.MachineIdLength);
        builder.Property(s => s.GpuUuid).HasMaxLength(TelemetryTables.GpuUuidLength);
        builder.HasIndex(s => s.At);
    }
}

internal sealed class MachineTelemetryHourConfiguration : IEntityTypeConfiguration<MachineTelemetryHour>
{
    public void Configure(EntityTypeBuilder<MachineTelemetryHour> builder)
    {
        builder.ToTable(TelemetryTables.MachineHours);
        builder.HasKey(s => new { s.MachineId, s.Hour });
        builder.Property(s => s.MachineId).HasMaxLength(TelemetryTables.MachineIdLength);
        builder.HasIndex(s => s.Hour);
    }
}

internal sealed class GpuTelemetryHourConfiguration : IEntityTypeConfiguration<GpuTelemetryHour>
{
    public void Configure(EntityTypeBuilder<GpuTelemetryHour> builder)
    {
        builder.ToTable(TelemetryTables.GpuHours);
        builder.HasKey(s => new { s.MachineId, s.Hour, s.GpuIndex });
        builder.Property(s => s.MachineId).HasMaxLength(TelemetryTables.MachineIdLength);
        builder.HasIndex(s => s.Hour);
    }
}
