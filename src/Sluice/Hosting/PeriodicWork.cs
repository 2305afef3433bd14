namespace Sluice.Hosting;

/// <summary>
/// The loop every background job shares: run on a <see cref="PeriodicTimer"/> driven by <see cref="TimeProvider"/>,
/// log a failed round by exception type only (messages can quote data) and try again next tick, stop quietly. Given
/// a <see cref="BackgroundHealth"/>, a failing round shows in <c>/readyz</c> until a round succeeds. Anything that escapes
/// this loop is caught by <see cref="SupervisedService"/>, which restarts it.
/// </summary>
internal static partial class PeriodicWork
{
    public static async Task RunAsync(
        TimeSpan interval, TimeProvider time, ILogger logger, string work, Func<CancellationToken, Task> round, CancellationToken stoppingToken,
        BackgroundHealth? health = null)
    {
        using var timer = new PeriodicTimer(interval, time);
        var failing = false;
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await round(stoppingToken);
                    if (failing)
                    {
                        failing = false;
                        health?.Cleared(work);
                        RoundRecovered(logger, work);
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
                {
                    if (!failing)
                    {
                        // Once per failing episode: a database outage would otherwise log every tick.
                        RoundFailed(logger, work, ex.GetType().Name);
                    }

                    failing = true;
                    health?.RoundFailed(work, ex.GetType().Name);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(11, LogLevel.Warning, "{Work} failed ({ExceptionType}); will retry every round until it succeeds")]
    private static partial void RoundFailed(ILogger logger, string work, string exceptionType);

    [LoggerMessage(14, LogLevel.Information, "{Work} succeeded again")]
    private static partial void RoundRecovered(ILogger logger, string work);
}
