using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace Sluice.Gateway;

/// <summary>
/// Chooses among a model's routes: the lowest priority first; among equal priorities, the one with the fewest
/// outstanding requests per unit of weight. A route whose circuit is open (too many consecutive failures) is skipped
/// until its open period ends, then admits one probe: success closes it, failure opens it again.
/// </summary>
public sealed class RouteSelector(IOptions<GatewayOptions> options, TimeProvider time, ILogger<RouteSelector> logger)
{
    private readonly ConcurrentDictionary<Guid, RouteState> _states = new();

    public RouteInfo? Next(IReadOnlyList<RouteInfo> routes, IReadOnlySet<Guid> tried)
    {
        // Priority groups in ascending order, without LINQ: this runs for every request, and a model has a few routes.
        var now = time.GetUtcNow();
        long previous = long.MinValue;
        while (true)
        {
            long priority = long.MaxValue;
            foreach (var route in routes)
            {
                if (route.Priority > previous && route.Priority < priority && !tried.Contains(route.Id))
                {
                    priority = route.Priority;
                }
            }

            if (priority == long.MaxValue)
            {
                return null;
            }

            RouteInfo? best = null;
            var bestLoad = double.MaxValue;
            foreach (var route in routes)
            {
                if (route.Priority != priority || tried.Contains(route.Id))
                {
                    continue;
                }

                var state = State(route.Id);
                if (!state.Admits(now))
                {
                    continue;
                }

                var load = (state.Outstanding + 1.0) / route.Weight;
                if (load < bestLoad || (load == bestLoad && Random.Shared.Next(2) == 0))
                {
                    best = route;
                    bestLoad = load;
                }
            }

            if (best is not null && State(best.Id).TryEnter(now))
            {
                return best;
            }

            previous = priority;
        }
    }

    public void Completed(RouteInfo route, bool success)
    {
        var state = State(route.Id);
        if (state.Exit(success, time.GetUtcNow(), options.Value.CircuitBreakerFailures, options.Value.CircuitBreakerOpenDuration))
        {
            GatewayLog.CircuitOpened(logger, route.Id, route.Provider.Name, options.Value.CircuitBreakerFailures);
        }
    }

    /// <summary>The request left the route without an outcome that says anything about it (the client left, or its input cannot be sent there).</summary>
    public void Released(RouteInfo route) => State(route.Id).Leave();

    public (int Outstanding, bool Open) Inspect(Guid routeId) => State(routeId) is var s ? (s.Outstanding, !s.Admits(time.GetUtcNow())) : default;

    /// <summary>
    /// A read-only view of a route's circuit for operators: closed, open (failing; skipped until its open period ends) or
    /// half-open (the open period ended; the next request is a probe), and since when. A route never used is closed, with
    /// no time.
    /// </summary>
    public CircuitSnapshot Circuit(Guid routeId) =>
        _states.TryGetValue(routeId, out var state) ? state.Snapshot(time.GetUtcNow()) : new CircuitSnapshot(CircuitState.Closed, null, 0, 0);

    private RouteState State(Guid routeId) => _states.GetOrAdd(routeId, _ => new RouteState());

    private sealed class RouteState
    {
        private readonly Lock _gate = new();
        private int _outstanding;
        private int _failures;
        private DateTimeOffset? _openUntil;
        private bool _probing;
        private DateTimeOffset? _openedAt;
        private DateTimeOffset? _closedAt;

        public int Outstanding => Volatile.Read(ref _outstanding);

        public bool Admits(DateTimeOffset now)
        {
            lock (_gate)
            {
                return _openUntil is not { } until || (now >= until && !_probing);
            }
        }

        public CircuitSnapshot Snapshot(DateTimeOffset now)
        {
            lock (_gate)
            {
                return _openUntil switch
                {
                    null => new CircuitSnapshot(CircuitState.Closed, _closedAt, _failures, _outstanding),
                    { } until when now < until => new CircuitSnapshot(CircuitState.Open, _openedAt, _failures, _outstanding, until),
                    { } until => new CircuitSnapshot(CircuitState.HalfOpen, until, _failures, _outstanding),
                };
            }
        }

        public bool TryEnter(DateTimeOffset now)
        {
            lock (_gate)
            {
                if (_openUntil is { } until)
                {
                    if (now < until || _probing)
                    {
                        return false;
                    }

                    _probing = true; // half-open: this request is the probe
                }

                _outstanding++;
                return true;
            }
        }

        public void Leave()
        {
            lock (_gate)
            {
                _outstanding--;
                _probing = false; // a half-open route offers its probe to the next request
            }
        }

        /// <summary>Returns true when this failure opened the circuit.</summary>
        public bool Exit(bool success, DateTimeOffset now, int threshold, TimeSpan openFor)
        {
            lock (_gate)
            {
                _outstanding--;
                var wasProbe = _probing;
                _probing = false;
                if (success)
                {
                    if (_openUntil is not null)
                    {
                        _closedAt = now;
                    }

                    _failures = 0;
                    _openUntil = null;
                    return false;
                }

                _failures++;
                if (wasProbe || _failures >= threshold)
                {
                    var opened = _openUntil is null;
                    if (opened)
                    {
                        _openedAt = now;
                    }

                    _openUntil = now + openFor;
                    return opened;
                }

                return false;
            }
        }
    }
}

public enum CircuitState
{
    Closed,
    Open,
    HalfOpen,
}

/// <summary>
/// A route's circuit at one moment: its state, since when (null: closed since the process started), the consecutive
/// failures counted, the requests in flight, and for an open circuit when it lets a probe through.
/// </summary>
public sealed record CircuitSnapshot(CircuitState State, DateTimeOffset? Since, int ConsecutiveFailures, int Outstanding, DateTimeOffset? OpenUntil = null)
{
    /// <summary>"closed", "open" or "half-open".</summary>
    public string Name => State switch
    {
        CircuitState.Open => "open",
        CircuitState.HalfOpen => "half-open",
        _ => "closed",
    };
}
