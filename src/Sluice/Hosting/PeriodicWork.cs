namespace Sluice.Hosting;

/// <summary>
/// The loop every background job shares: run on a <see cref="PeriodicTimer"/> driven by <see cref="TimeProvider"/>,
/// log a failed round by exception type only (messages can quote data) and try again next tick, stop quietly.
/// </summary>
internal static partial class PeriodicWork
{
    public static async Task RunAsync(
        TimeSpan interval, TimeProvider time, ILogger logger, string work, Func<CancellationToken, Task> round, CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await round(stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    RoundFailed(logger, work, ex.GetType().Name);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(11, LogLevel.Warning, "{Work} failed ({ExceptionType}); will retry")]
    private static partial void RoundFailed(ILogger logger, string work, string exceptionType);
}
