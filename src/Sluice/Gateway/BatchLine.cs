namespace Sluice.Gateway;

/// <summary>
/// One batch line as the gateway ran it: status, response body (in memory only), usage, and the hold still to be
/// settled once the runner has recorded the result.
/// </summary>
public sealed class BatchLine(Guid batchId, Billing.SpendGuard spend)
{
    private Billing.SpendGuard.Hold? _hold;

    public Guid BatchId { get; } = batchId;

    public int Status { get; internal set; }

    public TokenUsage Usage { get; internal set; }

    public byte[] Body { get; internal set; } = [];

    public long CostMicros { get; private set; }

    internal void Defer(Billing.SpendGuard.Hold hold, long costMicros)
    {
        _hold = hold;
        CostMicros = costMicros;
    }

    /// <summary>Charges the line (or, when <paramref name="charge"/> is false because its result could not be kept, frees its hold).</summary>
    public void Settle(bool charge = true)
    {
        if (Interlocked.Exchange(ref _hold, null) is { } hold)
        {
            spend.Settle(hold, charge ? CostMicros : 0);
        }
    }
}
