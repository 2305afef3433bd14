using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.Options;
using Sluice.Identity;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Identity;

/// <summary>
/// Sign-in reveals nothing and cannot be used to lock people out: guessing is stopped per (account, client network)
/// and per network, a guesser spread over many networks is slowed rather than locking the account, and an unknown
/// email takes as long to refuse as a wrong password.
/// </summary>
public sealed class SignInProtectionTests
{
    private static LoginThrottle Throttle(ManualTimeProvider clock, IdentityOptions? settings = null) =>
        new(Options.Create(settings ?? new IdentityOptions()), clock);

    [Fact]
    public void A_stranger_exhausts_only_their_own_network_for_the_account_and_the_window_ends_on_the_clock()
    {
        var clock = new ManualTimeProvider();
        var throttle = Throttle(clock);

        for (var i = 0; i < 10; i++)
        {
            Assert.False(throttle.TryAttempt("owner@example.com", "203.0.113.7").Refused);
        }

        var refused = throttle.TryAttempt("owner@example.com", "203.0.113.7");
        Assert.True(refused.Refused);
        Assert.True(refused.RetryAfter > TimeSpan.Zero && refused.RetryAfter <= TimeSpan.FromMinutes(5));
        Assert.True(throttle.TryAttempt("owner@example.com", "203.0.113.200").Refused); // same /24: the same network
        Assert.False(throttle.TryAttempt("owner@example.com", "198.51.100.20").Refused); // the owner, elsewhere
        Assert.False(throttle.TryAttempt("other@example.com", "203.0.113.7").Refused); // another account from that network

        clock.Advance(TimeSpan.FromMinutes(5));
        Assert.False(throttle.TryAttempt("owner@example.com", "203.0.113.7").Refused);
    }

    [Fact]
    public void IPv6_clients_are_counted_by_their_64_and_mapped_IPv4_by_its_24()
    {
        Assert.Equal(LoginThrottle.Network("2001:db8:1:2:aaaa::1"), LoginThrottle.Network("2001:db8:1:2:ffff::9"));
        Assert.NotEqual(LoginThrottle.Network("2001:db8:1:2::1"), LoginThrottle.Network("2001:db8:1:3::1"));
        Assert.Equal(LoginThrottle.Network("203.0.113.7"), LoginThrottle.Network("::ffff:203.0.113.99"));
        Assert.Equal("unknown", LoginThrottle.Network(null));
    }

    [Fact]
    public void A_network_is_limited_across_accounts()
    {
        var clock = new ManualTimeProvider();
        var throttle = Throttle(clock, new IdentityOptions { LoginAttemptsPerIp = 4 });
        var refused = Enumerable.Range(0, 6).Select(i => throttle.TryAttempt($"user{i}@example.com", "203.0.113.7").Refused).ToList();

        Assert.Equal([false, false, false, false, true, true], refused);
        Assert.False(throttle.TryAttempt("user9@example.com", "198.51.100.1").Refused);
    }

    [Fact]
    public void Guessing_from_many_networks_slows_the_account_instead_of_locking_it()
    {
        var clock = new ManualTimeProvider();
        var throttle = Throttle(clock, new IdentityOptions { LoginAttemptsPerAccountBeforeSlowdown = 30, LoginSlowdown = TimeSpan.FromSeconds(2) });
        for (var i = 0; i < 30; i++)
        {
            Assert.Equal(new LoginDecision(null, TimeSpan.Zero), throttle.TryAttempt("owner@example.com", $"10.{i}.0.1"));
        }

        var owner = throttle.TryAttempt("owner@example.com", "198.51.100.20");
        Assert.False(owner.Refused);
        Assert.Equal(TimeSpan.FromSeconds(2), owner.Delay);

        clock.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal(TimeSpan.Zero, throttle.TryAttempt("owner@example.com", "198.51.100.20").Delay);
    }

    [Fact]
    public async Task Ten_wrong_passwords_from_a_strangers_network_do_not_lock_the_owner_out_of_their_own()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, _) = await sluice.SignUpAndLoginAsync("owner@example.com");
        using var stranger = sluice.Anonymous();
        stranger.DefaultRequestHeaders.Add(ClientAddressFilter.Header, "203.0.113.7");
        using var owner = sluice.Anonymous();
        owner.DefaultRequestHeaders.Add(ClientAddressFilter.Header, "198.51.100.20");

        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 12; i++)
        {
            statuses.Add((await stranger.PostAsJsonAsync("/api/v1/auth/login", new { email = "owner@example.com", password = $"guess number {i}" })).StatusCode);
        }

        var ownerSignIn = await owner.PostAsJsonAsync("/api/v1/auth/login", new { email = "owner@example.com", password = SluiceFactory.Password });

        Assert.Equal(HttpStatusCode.TooManyRequests, statuses[^1]);
        Assert.True(ownerSignIn.StatusCode == HttpStatusCode.OK, $"the owner was answered {(int)ownerSignIn.StatusCode}: {await ownerSignIn.Content.ReadAsStringAsync()}");
    }

    [Fact]
    public async Task An_unknown_email_takes_as_long_to_refuse_as_a_wrong_password()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?>
        {
            // Real passwords cost more than the minimum, as in production (default 12); 11 keeps the test short.
            ["Identity:PasswordHashCost"] = "11",
            ["Identity:LoginAttemptsPerAccount"] = "1000",
            ["Identity:LoginAttemptsPerIp"] = "10000",
            ["Identity:LoginAttemptsPerAccountBeforeSlowdown"] = "1000",
        });
        await sluice.SignUpAndLoginAsync("known@example.com");
        using var client = sluice.Anonymous();

        async Task<double> TimeAsync(string email)
        {
            var clock = Stopwatch.StartNew();
            var response = await client.PostAsJsonAsync("/api/v1/auth/login", new { email, password = "not the password" });
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            return clock.Elapsed.TotalMilliseconds;
        }

        await TimeAsync("warm-up@example.com");
        await TimeAsync("known@example.com");
        var known = new List<double>();
        var unknown = new List<double>();
        for (var i = 0; i < 15; i++)
        {
            // Interleaved, so load on the machine falls on both alike.
            known.Add(await TimeAsync("known@example.com"));
            unknown.Add(await TimeAsync($"nobody{i}@example.com"));
        }

        var ratio = Median(known) / Median(unknown);
        Assert.True(ratio is > 0.7 and < 1.4,
            $"median sign-in refusal: known email {Median(known):F0} ms, unknown email {Median(unknown):F0} ms (ratio {ratio:F2})");
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }
}
