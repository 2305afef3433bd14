using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;

namespace Sluice.Identity;

/// <summary>
/// Limits sign-in attempts per account and per client address (fixed windows, in memory on each replica).
/// Every attempt counts, successful or not, so guessing cannot hide between successes.
/// </summary>
public sealed class LoginThrottle : IDisposable
{
    private readonly PartitionedRateLimiter<string> _perAccount;
    private readonly PartitionedRateLimiter<string> _perAddress;

    public LoginThrottle(IOptions<IdentityOptions> options)
    {
        var settings = options.Value;
        _perAccount = Create(settings.LoginAttemptsPerAccount, settings.LoginWindow);
        _perAddress = Create(settings.LoginAttemptsPerIp, settings.LoginWindow);
    }

    /// <summary>Null when the attempt may proceed, otherwise how long to wait.</summary>
    public TimeSpan? TryAttempt(string normalizedEmail, string? address)
    {
        using var byAddress = _perAddress.AttemptAcquire(address ?? "unknown");
        if (!byAddress.IsAcquired)
        {
            return RetryAfter(byAddress);
        }

        using var byAccount = _perAccount.AttemptAcquire(normalizedEmail);
        return byAccount.IsAcquired ? null : RetryAfter(byAccount);
    }

    private static TimeSpan RetryAfter(RateLimitLease lease) =>
        lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? retryAfter : TimeSpan.FromMinutes(1);

    private static PartitionedRateLimiter<string> Create(int permits, TimeSpan window) =>
        PartitionedRateLimiter.Create<string, string>(partition => RateLimitPartition.GetFixedWindowLimiter(partition, _ => new FixedWindowRateLimiterOptions
        {
            PermitLimit = permits,
            Window = window,
            QueueLimit = 0,
            AutoReplenishment = true,
        }));

    public void Dispose()
    {
        _perAccount.Dispose();
        _perAddress.Dispose();
    }
}
