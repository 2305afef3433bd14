namespace Sluice.Agent;

/// <summary>
/// Asks the heartbeat loop to send its next heartbeat now instead of at the end of its interval: when a task becomes
/// ready or ends (so the server routes to it, or replaces it, without waiting up to an interval), and when the server
/// nudges the agent because its desired set changed (a replica placed for a request waiting at zero). Signals while a
/// heartbeat is under way coalesce into one.
/// </summary>
public sealed class AgentWake
{
    private readonly Lock _gate = new();
    private TaskCompletionSource _signal = NewSignal();

    public void Signal()
    {
        lock (_gate)
        {
            _signal.TrySetResult();
        }
    }

    /// <summary>Completes at the next <see cref="Signal"/> (or at once if one came since the last <see cref="Reset"/>).</summary>
    public Task WaitAsync()
    {
        lock (_gate)
        {
            return _signal.Task;
        }
    }

    /// <summary>Called as a heartbeat starts: what it reports covers every signal before it.</summary>
    public void Reset()
    {
        lock (_gate)
        {
            if (_signal.Task.IsCompleted)
            {
                _signal = NewSignal();
            }
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
