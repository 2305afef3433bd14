using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace Sluice.Identity;

/// <summary>What the throttle says about one sign-in attempt: refused (wait <see cref="RetryAfter"/>), or allowed after <see cref="Delay"/>.</summary>
public readonly record struct LoginDecision(TimeSpan? RetryAfter, TimeSpan Delay)
{
    public bool Refused => RetryAfter is not null;
}

/// <summary>
/// Limits sign-in attempts so guessing stops without letting a stranger lock the owner out (fixed windows of
/// <see cref="IdentityOptions.LoginWindow"/>, in memory on each replica, on <see cref="TimeProvider"/>). A client is
/// counted by its network: the /24 of an IPv4 address, the /64 of an IPv6 one.
/// <list type="bullet">
/// <item>per (account, client network): <see cref="IdentityOptions.LoginAttemptsPerAccount"/>, then 429 for that
/// account from that network only, so the owner signing in from elsewhere is not locked out;</item>
/// <item>per client network, across accounts: <see cref="IdentityOptions.LoginAttemptsPerIp"/>, then 429;</item>
/// <item>per account, from every network together: past <see cref="IdentityOptions.LoginAttemptsPerAccountBeforeSlowdown"/>
/// each attempt waits <see cref="IdentityOptions.LoginSlowdown"/> first: a guesser spread over many networks is
/// slowed, and the owner still gets in, a little later.</item>
/// </list>
/// Every attempt counts, successful or not, so guessing cannot hide between successes.
/// </summary>
public sealed class LoginThrottle(IOptions<IdentityOptions> options, TimeProvider time)
{
    private const int MaxEntries = 100_000;

    private readonly ConcurrentDictionary<string, Window> _windows = new(StringComparer.Ordinal);

    public LoginDecision TryAttempt(string normalizedEmail, string? address)
    {
        var settings = options.Value;
        var network = Network(address);
        var now = time.GetUtcNow();
        if (_windows.Count >= MaxEntries)
        {
            Sweep(now);
        }

        var byNetwork = Count($"n|{network}", now, settings.LoginWindow);
        if (byNetwork.Count > settings.LoginAttemptsPerIp)
        {
            return new LoginDecision(byNetwork.Remaining(now), TimeSpan.Zero);
        }

        var byAccountAndNetwork = Count($"an|{network}|{normalizedEmail}", now, settings.LoginWindow);
        if (byAccountAndNetwork.Count > settings.LoginAttemptsPerAccount)
        {
            return new LoginDecision(byAccountAndNetwork.Remaining(now), TimeSpan.Zero);
        }

        var byAccount = Count($"a|{normalizedEmail}", now, settings.LoginWindow);
        return new LoginDecision(null, byAccount.Count > settings.LoginAttemptsPerAccountBeforeSlowdown ? settings.LoginSlowdown : TimeSpan.Zero);
    }

    /// <summary>The network a client address is counted by: its /24 (IPv4) or /64 (IPv6); "unknown" without one.</summary>
    public static string Network(string? address)
    {
        if (!IPAddress.TryParse(address, out var ip))
        {
            return "unknown";
        }

        if (ip.IsIPv4MappedToIPv6)
        {
            ip = ip.MapToIPv4();
        }

        var bytes = ip.GetAddressBytes();
        if (ip.AddressFamily == AddressFamily.InterNetwork)
        {
            return $"{bytes[0]}.{bytes[1]}.{bytes[2]}.0/24";
        }

        Array.Clear(bytes, 8, bytes.Length - 8);
        return $"{new IPAddress(bytes)}/64";
    }

    private Window Count(string key, DateTimeOffset now, TimeSpan length) =>
        _windows.AddOrUpdate(
            key,
            _ => new Window(now + length, 1),
            (_, window) => window.EndsAt > now ? window with { Count = window.Count + 1 } : new Window(now + length, 1));

    private void Sweep(DateTimeOffset now)
    {
        foreach (var entry in _windows)
        {
            if (entry.Value.EndsAt <= now)
            {
                _windows.TryRemove(entry);
            }
        }

        if (_windows.Count >= MaxEntries)
        {
            _windows.Clear(); // a flood of distinct networks: forget rather than grow without bound
        }
    }

    private readonly record struct Window(DateTimeOffset EndsAt, int Count)
    {
        public TimeSpan Remaining(DateTimeOffset now) => EndsAt - now > TimeSpan.FromSeconds(1) ? EndsAt - now : TimeSpan.FromSeconds(1);
    }
}
