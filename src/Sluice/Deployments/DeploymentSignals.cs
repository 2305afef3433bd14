namespace Sluice.Deployments;

/// <summary>
/// In-process signals between the deployment parts of one server: a request woke a deployment from zero, so this
/// server's scheduler runs a pass now instead of at its next interval (on the replica holding its lease; elsewhere the
/// pass does nothing and the leader's next pass places the replica).
/// </summary>
public sealed class DeploymentSignals
{
    private Action? _woken;

    public void OnWoken(Action handler) => _woken += handler;

    public void Woken() => _woken?.Invoke();
}
