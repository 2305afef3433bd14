namespace Sluice.Compute.Telemetry;

internal static partial class TelemetryLog
{
    [LoggerMessage(1601, LogLevel.Warning, "Telemetry buffer is full ({Capacity} samples); samples are being dropped ({Dropped} so far)")]
    public static partial void Dropping(ILogger logger, int capacity, long dropped);

    [LoggerMessage(1602, LogLevel.Error, "Writing telemetry failed ({ExceptionType}); {Waiting} samples wait in memory and are retried with backoff")]
    public static partial void WriteFailed(ILogger logger, int waiting, string exceptionType);

    [LoggerMessage(1603, LogLevel.Information, "Writing telemetry succeeded again; {Waiting} samples were waiting")]
    public static partial void WritingAgain(ILogger logger, int waiting);

    [LoggerMessage(1604, LogLevel.Error, "A telemetry sample of machine {MachineId} was refused by the database ({ExceptionType}) and is not stored")]
    public static partial void SampleRefused(ILogger logger, string machineId, string exceptionType);

    [LoggerMessage(1605, LogLevel.Information, "Rolled up {Hours} hour(s) of telemetry, up to {Through}")]
    public static partial void RolledUp(ILogger logger, int hours, DateTimeOffset through);

    [LoggerMessage(1606, LogLevel.Warning, "Telemetry for machine id of {Length} characters refused: not a machine id")]
    public static partial void BadMachineId(ILogger logger, int length);
}
