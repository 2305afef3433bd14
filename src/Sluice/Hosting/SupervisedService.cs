using System.Collections.Concurrent;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Sluice.Hosting;

/// <summary>
/// What is wrong with background work right now, for <c>/readyz</c>: loops that crashed and are waiting to restart
/// (<see cref="SupervisedService"/>), and periodic rounds that keep failing (<see cref="PeriodicWork"/>). An entry is
/// cleared when its loop has run a while without crashing, or its next round succeeds.
/// </summary>
public sealed class BackgroundHealth(TimeProvider time, ILogger<BackgroundHealth> logger)
{
    /// <summary>For a service built outside the host (no registered instance): system clock, no log.</summary>
    internal BackgroundHealth()
        : this(TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<BackgroundHealth>.Instance)
    {
    }

    internal TimeProvider Time => time;

    internal ILogger Logger => logger;

    private readonly ConcurrentDictionary<string, string> _problems = new(StringComparer.Ordinal);

    public IReadOnlyDictionary<string, string> Problems => _problems;

    public void Crashed(string loop, string exceptionType, int crashes, TimeSpan restartIn) =>
        _problems[loop] = $"crashed {crashes} time(s), last with {exceptionType}; restarting in {restartIn.TotalSeconds:0.#} s";

    public void RoundFailed(string work, string exceptionType) => _problems[work] = $"last round failed ({exceptionType}); retrying";

    public void Cleared(string name) => _problems.TryRemove(name, out _);
}

/// <summary>Reports <see cref="BackgroundHealth"/> in <c>/readyz</c>: degraded (still ready) while any loop is crashed or failing.</summary>
internal sealed class BackgroundHealthCheck(BackgroundHealth health) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var problems = health.Problems.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}: {p.Value}").ToList();
        return Task.FromResult(problems.Count == 0
            ? HealthCheckResult.Healthy("all background loops running")
            : HealthCheckResult.Degraded(string.Join("; ", problems)));
    }
}

/// <summary>
/// A background loop that can never stop the host: an exception escaping <see cref="RunAsync"/> is logged (its type
/// only: messages can quote data), shown in <c>/readyz</c>, and the loop restarts after an exponential backoff
/// (1 s doubling to <see cref="MaxBackoff"/>). Once a restarted loop has run <see cref="RecoveryWindow"/> without
/// crashing, its entry is cleared and the backoff starts again from 1 s. Every <c>BackgroundService</c> in Sluice
/// derives from this; the host's <c>BackgroundServiceExceptionBehavior</c> is also set to <c>Ignore</c>.
/// </summary>
public abstract partial class SupervisedService(BackgroundHealth? health) : BackgroundService
{
    private readonly BackgroundHealth _health = health ?? new BackgroundHealth();

    private TimeProvider Time => _health.Time;

    private ILogger Logger => _health.Logger;

    protected BackgroundHealth Health => _health;

    protected virtual TimeSpan FirstBackoff => TimeSpan.FromSeconds(1);

    protected virtual TimeSpan MaxBackoff => TimeSpan.FromMinutes(1);

    protected virtual TimeSpan RecoveryWindow => TimeSpan.FromSeconds(30);

    /// <summary>The loop's name in the log and in <c>/readyz</c>.</summary>
    protected virtual string LoopName => GetType().Name;

    /// <summary>How many times the loop crashed since it last ran <see cref="RecoveryWindow"/> cleanly.</summary>
    public int Crashes { get; private set; }

    protected abstract Task RunAsync(CancellationToken stoppingToken);

    protected sealed override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            Task run;
            try
            {
                run = RunAsync(stoppingToken);
            }
            catch (Exception ex)
            {
                run = Task.FromException(ex);
            }

            try
            {
                if (Crashes > 0)
                {
                    using var windowEnd = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                    var window = Task.Delay(RecoveryWindow, Time, windowEnd.Token);
                    await Task.WhenAny(run, window);
                    windowEnd.Cancel();
                    if (window.IsCompletedSuccessfully || run.IsCompletedSuccessfully)
                    {
                        Crashes = 0;
                        _health.Cleared(LoopName);
                        LoopRecovered(Logger, LoopName);
                    }
                }

                await run;
                return; // the loop finished on its own
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                Crashes++;
                var backoff = TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, FirstBackoff.Ticks * (1L << Math.Min(Crashes - 1, 20))));
                _health.Crashed(LoopName, ex.GetType().Name, Crashes, backoff);
                LoopCrashed(Logger, LoopName, ex.GetType().Name, Crashes, backoff.TotalSeconds);
                try
                {
                    await Task.Delay(backoff, Time, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    [LoggerMessage(12, LogLevel.Error, "Background loop {Loop} crashed ({ExceptionType}, {Crashes} time(s) in a row); restarting in {BackoffSeconds} s")]
    private static partial void LoopCrashed(ILogger logger, string loop, string exceptionType, int crashes, double backoffSeconds);

    [LoggerMessage(13, LogLevel.Information, "Background loop {Loop} recovered")]
    private static partial void LoopRecovered(ILogger logger, string loop);
}
