using Microsoft.AspNetCore.TestHost;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Deployments;
using Sluice.Deployments.Autoscaling;
using Sluice.Storage;
using Sluice.Tests.TestSupport;
using static Sluice.Tests.Deployments.Autoscaling.AutoscalerKit;

namespace Sluice.Tests.Deployments.Autoscaling;

/// <summary>
/// The autoscaler against a real database on a manual clock: load fed through <see cref="DeploymentLoad"/> (as routing
/// feeds it), shared through load reports, decided on by the one replica holding the lease, written as desired replicas
/// with a <c>scaled</c> event holding every input.
/// </summary>
public sealed class DeploymentAutoscalerTests
{
    private static readonly TimeSpan Tick = TimeSpan.FromSeconds(2);

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task Load_seen_by_the_gateway_scales_up_at_once_then_panics_on_a_burst_and_each_change_is_an_event_with_its_inputs(DatabaseProvider provider)
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, Settings, clock);
        _ = sluice.Services;
        var (load, _, _) = Parts(sluice);
        var deployment = await DeploymentAsync(database, clock.GetUtcNow(), min: 1, max: 10, target: 2, desired: 1);
        var first = await ReplicaAsync(database, deployment, clock.GetUtcNow());

        // 3 in flight on one replica at target 2: the stable window asks for ceil(3 / 2) = 2 (no panic: 1.5 < 2 × 1).
        for (var i = 0; i < 3; i++)
        {
            load.Enter(deployment.Id, first);
        }

        var round = await RoundAsync(sluice);
        Assert.Equal(new AutoscaleRound(true, 1, 0), round);
        Assert.Equal(2, await DesiredAsync(database, deployment.Id));
        var up = Assert.Single(await EventsAsync(database, deployment.Id, DeploymentEventKinds.Scaled));
        Assert.Equal(1, up.GetProperty("from").GetInt32());
        Assert.Equal(2, up.GetProperty("to").GetInt32());
        Assert.Equal("load", up.GetProperty("reason").GetString());
        Assert.False(up.GetProperty("panic").GetBoolean());
        Assert.Equal(3, up.GetProperty("stableAverage").GetDouble());
        Assert.Equal(3, up.GetProperty("panicAverage").GetDouble());
        Assert.Equal(3, up.GetProperty("gatewayInFlight").GetInt32());
        Assert.Equal(0, up.GetProperty("waiting").GetInt32());
        Assert.Equal(0, up.GetProperty("queueDepth").GetInt32());
        Assert.Equal(3, up.GetProperty("observed").GetInt32());
        Assert.Equal(1, up.GetProperty("readyReplicas").GetInt32());
        Assert.Equal(2, up.GetProperty("targetConcurrency").GetInt32());
        Assert.Equal(1, up.GetProperty("reportingServers").GetInt32());

        // Steady: nothing written while the decision stays.
        clock.Advance(Tick);
        Assert.Equal(new AutoscaleRound(true, 0, 0), await RoundAsync(sluice));

        // A burst: 15 in flight with 2 ready; the panic window (samples 3, 3, 15: avg 7) / 2 = 3.5 < 4 is not yet a panic...
        var second = await ReplicaAsync(database, deployment, clock.GetUtcNow());
        for (var i = 0; i < 12; i++)
        {
            load.Enter(deployment.Id, i % 2 == 0 ? first : second);
        }

        clock.Advance(Tick);
        await RoundAsync(sluice);
        Assert.Equal(4, await DesiredAsync(database, deployment.Id)); // stable avg 7 / 2 → 4
        // ... the next one is (avg of 3, 15, 15 = 11; 5.5 ≥ 2 × 2 ready): panic, 6 at once.
        clock.Advance(Tick);
        await RoundAsync(sluice);
        Assert.Equal(6, await DesiredAsync(database, deployment.Id));
        var events = await EventsAsync(database, deployment.Id, DeploymentEventKinds.Scaled);
        Assert.Equal([2, 4, 6], events.Select(e => e.GetProperty("to").GetInt32()));
        var panic = events[^1];
        Assert.True(panic.GetProperty("panic").GetBoolean());
        Assert.Equal("panic", panic.GetProperty("reason").GetString());
        Assert.Equal(11, panic.GetProperty("panicAverage").GetDouble());
        Assert.Equal(2, panic.GetProperty("readyReplicas").GetInt32());
        Assert.Equal(15, panic.GetProperty("gatewayInFlight").GetInt32());

        // The burst ends: in panic nothing scales down, and afterwards only once the scale-down delay (300 s) has passed.
        var panicAt = clock.GetUtcNow();
        for (var i = 0; i < 15; i++)
        {
            load.Leave(deployment.Id, first);
        }

        // The panic window still sees the burst one round later (15, 15, 0: 10 / 2 >= 2 x 2); panic then holds 6 until a
        // stable window (60 s) passes without a burst, and that 6 stays the highest recommendation for the 300 s delay:
        // down at 2 + 58 + 300 = 360 s, not a round earlier.
        for (var t = 0; t < 200 && await DesiredAsync(database, deployment.Id) == 6; t++)
        {
            clock.Advance(Tick);
            await RoundAsync(sluice);
        }

        Assert.Equal(1, await DesiredAsync(database, deployment.Id));
        Assert.Equal(TimeSpan.FromSeconds(360), clock.GetUtcNow() - panicAt);
        var down = (await EventsAsync(database, deployment.Id, DeploymentEventKinds.Scaled))[^1];
        Assert.Equal(("scale_down", 6, 1, 0), (down.GetProperty("reason").GetString(), down.GetProperty("from").GetInt32(), down.GetProperty("to").GetInt32(),
            down.GetProperty("observed").GetInt32()));
    }

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task A_serverless_deployment_scales_to_zero_after_its_idle_timeout_and_a_waiting_request_wakes_it(DatabaseProvider provider)
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, Settings, clock);
        _ = sluice.Services;
        var (load, _, _) = Parts(sluice);
        var deployment = await DeploymentAsync(database, clock.GetUtcNow(), min: 0, max: 3, target: 1, desired: 1, idleSeconds: 60, scaleDownDelaySeconds: 0);
        var replica = await ReplicaAsync(database, deployment, clock.GetUtcNow());
        await RoundAsync(sluice);

        // A request that takes 100 s: busy all along, so not idle however long ago it arrived.
        clock.Advance(Tick);
        load.Enter(deployment.Id, replica);
        for (var t = 0; t < 50; t++)
        {
            clock.Advance(Tick);
            await RoundAsync(sluice);
        }

        load.Leave(deployment.Id, replica);
        Assert.Equal(1, await DesiredAsync(database, deployment.Id));

        // Idle from its last sample with anything in flight: still one replica until 60 s have passed, then zero.
        var lastBusy = clock.GetUtcNow();
        while (clock.GetUtcNow() - lastBusy < TimeSpan.FromSeconds(58))
        {
            clock.Advance(Tick);
            await RoundAsync(sluice);
            Assert.Equal(1, await DesiredAsync(database, deployment.Id));
        }

        clock.Advance(Tick);
        await RoundAsync(sluice);
        Assert.Equal(0, await DesiredAsync(database, deployment.Id));
        var idle = (await EventsAsync(database, deployment.Id, DeploymentEventKinds.Scaled))[^1];
        Assert.Equal("idle", idle.GetProperty("reason").GetString());
        Assert.Equal(60, idle.GetProperty("idleTimeoutSeconds").GetInt32());
        Assert.True(idle.GetProperty("idleSeconds").GetInt64() >= 60);

        // At zero with nothing asking, it stays there.
        clock.Advance(Tick);
        Assert.Equal(new AutoscaleRound(true, 0, 0), await RoundAsync(sluice));

        // Routing wakes it (the conditional 0 → 1) for a waiting request: the autoscaler never lowers that wake.
        await using (var db = database.CreateContext())
        {
            Assert.Equal(1, await db.Deployments.Where(d => d.Id == deployment.Id && d.DesiredReplicas == 0).ExecuteUpdateAsync(s => s.SetProperty(d => d.DesiredReplicas, 1)));
        }

        load.Queued(deployment.Id);
        for (var t = 0; t < 5; t++)
        {
            clock.Advance(Tick);
            await RoundAsync(sluice);
            Assert.Equal(1, await DesiredAsync(database, deployment.Id));
        }

        load.Dequeued(deployment.Id);

        // Back to zero after another idle timeout; then a request waiting with no wake from routing: the autoscaler wakes it.
        for (var t = 0; t < 35 && await DesiredAsync(database, deployment.Id) == 1; t++)
        {
            clock.Advance(Tick);
            await RoundAsync(sluice);
        }

        Assert.Equal(0, await DesiredAsync(database, deployment.Id));
        load.Queued(deployment.Id);
        clock.Advance(Tick);
        await RoundAsync(sluice);
        Assert.Equal(1, await DesiredAsync(database, deployment.Id));
        var wake = (await EventsAsync(database, deployment.Id, DeploymentEventKinds.Scaled))[^1];
        Assert.Equal(("wake", 0, 1, 1), (wake.GetProperty("reason").GetString(), wake.GetProperty("from").GetInt32(), wake.GetProperty("to").GetInt32(),
            wake.GetProperty("waiting").GetInt32()));
    }

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task With_two_server_replicas_only_the_lease_holder_decides_and_the_load_both_see_is_summed(DatabaseProvider provider)
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var one = new SluiceFactory(database, Settings, clock);
        _ = one.Services;
        await using var two = new SluiceFactory(database, Settings, clock);
        _ = two.Services;
        var deployment = await DeploymentAsync(database, clock.GetUtcNow(), min: 1, max: 10, target: 3, desired: 1);
        var replica = await ReplicaAsync(database, deployment, clock.GetUtcNow());

        // 2 in flight through each server: 2 / 3 alone would keep one replica; 4 / 3 together ask for two.
        foreach (var sluice in new[] { one, two })
        {
            var load = Parts(sluice).Load;
            load.Enter(deployment.Id, replica);
            load.Enter(deployment.Id, replica);
            await Parts(sluice).Reporter.ReportAsync(CancellationToken.None);
        }

        Assert.Equal(new AutoscaleRound(true, 1, 0), await Parts(one).Autoscaler.TickAsync(CancellationToken.None));
        Assert.Equal(new AutoscaleRound(false, 0, 0), await Parts(two).Autoscaler.TickAsync(CancellationToken.None));
        Assert.Equal(2, await DesiredAsync(database, deployment.Id));
        var scaled = Assert.Single(await EventsAsync(database, deployment.Id, DeploymentEventKinds.Scaled));
        Assert.Equal((4, 2), (scaled.GetProperty("gatewayInFlight").GetInt32(), scaled.GetProperty("reportingServers").GetInt32()));

        // Both keep asking every tick: still one decider, however often.
        for (var t = 0; t < 3; t++)
        {
            clock.Advance(TimeSpan.FromSeconds(2));
            Assert.True((await Parts(two).Autoscaler.TickAsync(CancellationToken.None)).Decided is false);
            Assert.True((await Parts(one).Autoscaler.TickAsync(CancellationToken.None)).Decided);
        }

        Assert.True(Parts(one).Autoscaler.IsLeader);
        Assert.False(Parts(two).Autoscaler.IsLeader);
        Assert.Null(Parts(two).Autoscaler.Window(deployment.Id));

        // The decider stops renewing (it died): once the lease (20 min here) has expired the other takes over, and the
        // first, back, does not decide.
        clock.Advance(TimeSpan.FromMinutes(21));
        Assert.True((await Parts(two).Autoscaler.TickAsync(CancellationToken.None)).Decided);
        Assert.False((await Parts(one).Autoscaler.TickAsync(CancellationToken.None)).Decided);
        Assert.False(Parts(one).Autoscaler.IsLeader);
        Assert.Contains("now decides autoscaling", two.Logs.All, StringComparison.Ordinal);
        Assert.Contains("no longer decides autoscaling", one.Logs.All, StringComparison.Ordinal);

        // Reports older than the freshness (15 min here) count for nothing: the new decider, seeing stale load, holds (it just
        // started watching, so the scale-down delay starts with it).
        Assert.Equal(2, await DesiredAsync(database, deployment.Id));
        Assert.Single(await EventsAsync(database, deployment.Id, DeploymentEventKinds.Scaled));
    }

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task Two_replicas_asking_for_the_lease_at_the_same_moment_never_both_get_it(DatabaseProvider provider)
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var one = new SluiceFactory(database, Settings, clock);
        _ = one.Services;
        await using var two = new SluiceFactory(database, Settings, clock);
        _ = two.Services;
        var first = Parts(one).Autoscaler;
        var second = Parts(two).Autoscaler;

        // Round 0 races for the row's creation, later rounds for an expired lease (the clock moves past it each time).
        for (var round = 0; round < 10; round++)
        {
            var ticks = await Task.WhenAll(first.TickAsync(CancellationToken.None), second.TickAsync(CancellationToken.None));
            Assert.Equal(1, ticks.Count(t => t.Decided));
            clock.Advance(TimeSpan.FromMinutes(21));
        }

        await using var db = database.CreateContext();
        Assert.Equal(1, await db.AutoscalerLeases.CountAsync());
    }

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task A_scale_up_the_wallet_refuses_keeps_the_count_with_at_most_one_event_a_minute_and_goes_through_once_covered(DatabaseProvider provider)
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(provider);
        var wallet = new TestWallet();
        await using var plain = new SluiceFactory(database, Settings, clock);
        await using var sluice = plain.WithWebHostBuilder(b => b.ConfigureTestServices(s => s.AddSingleton<IDeploymentBilling>(wallet)));
        _ = sluice.Services;
        var load = sluice.Services.GetRequiredService<DeploymentLoad>();
        var deployment = await DeploymentAsync(database, clock.GetUtcNow(), min: 1, max: 10, target: 1, desired: 2);
        var replica = await ReplicaAsync(database, deployment, clock.GetUtcNow());
        await ReplicaAsync(database, deployment, clock.GetUtcNow());
        for (var i = 0; i < 3; i++)
        {
            load.Enter(deployment.Id, replica);
        }

        async Task<AutoscaleRound> Round()
        {
            await sluice.Services.GetRequiredService<DeploymentLoadReporter>().ReportAsync(CancellationToken.None);
            return await sluice.Services.GetRequiredService<DeploymentAutoscaler>().TickAsync(CancellationToken.None);
        }

        Assert.Equal(new AutoscaleRound(true, 0, 1), await Round());
        Assert.Equal(2, await DesiredAsync(database, deployment.Id));
        Assert.Equal((deployment.Id, 3), wallet.Asked.Single());
        var refused = Assert.Single(await EventsAsync(database, deployment.Id, DeploymentEventKinds.ScaleUpRefused));
        Assert.Equal((2, 3, "the wallet covers 2 replicas of this deployment"),
            (refused.GetProperty("from").GetInt32(), refused.GetProperty("to").GetInt32(), refused.GetProperty("refusal").GetString()));
        Assert.Equal(3, refused.GetProperty("decision").GetProperty("gatewayInFlight").GetInt32());
        Assert.Empty(await EventsAsync(database, deployment.Id, DeploymentEventKinds.Scaled));

        // Still refused every tick, but one event a minute.
        for (var t = 0; t < 29; t++)
        {
            clock.Advance(Tick);
            Assert.Equal(1, (await Round()).Refused);
        }

        Assert.Single(await EventsAsync(database, deployment.Id, DeploymentEventKinds.ScaleUpRefused));
        clock.Advance(Tick);
        await Round();
        Assert.Equal(2, (await EventsAsync(database, deployment.Id, DeploymentEventKinds.ScaleUpRefused)).Count);

        var audited = await Sluice.Tests.Compute.ComputeKit.AuditAsync(database, DeploymentAutoscaler.ScaleUpAction);
        Assert.Equal(2, audited.Count);
        Assert.All(audited, a => Assert.Equal(($"deployment:{deployment.Id}", "refused", "system"), (a.Target, a.Outcome, a.Actor)));

        // Funded: the scale-up goes through.
        wallet.Covers = 10;
        clock.Advance(Tick);
        Assert.Equal(new AutoscaleRound(true, 1, 0), await Round());
        Assert.Equal(3, await DesiredAsync(database, deployment.Id));
    }

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task The_engines_queue_depth_and_the_agents_in_flight_count_where_they_exceed_what_the_gateway_sees(DatabaseProvider provider)
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(provider);
        await using var sluice = new SluiceFactory(database, Settings, clock);
        _ = sluice.Services;
        var (load, _, _) = Parts(sluice);
        var deployment = await DeploymentAsync(database, clock.GetUtcNow(), min: 1, max: 10, target: 4, desired: 1);
        var replica = await ReplicaAsync(database, deployment, clock.GetUtcNow(), agentInFlight: 6, queueDepth: 7);
        load.Enter(deployment.Id, replica);

        await RoundAsync(sluice);
        Assert.Equal(2, await DesiredAsync(database, deployment.Id)); // 7 / 4, not the gateway's 1 / 4
        var scaled = Assert.Single(await EventsAsync(database, deployment.Id, DeploymentEventKinds.Scaled));
        Assert.Equal((1, 6, 7, 7), (scaled.GetProperty("gatewayInFlight").GetInt32(), scaled.GetProperty("agentInFlight").GetInt32(),
            scaled.GetProperty("queueDepth").GetInt32(), scaled.GetProperty("observed").GetInt32()));
    }

    [Theory]
    [InlineData(DeploymentStatuses.Failed)]
    [InlineData(DeploymentStatuses.Suspended)]
    [InlineData(DeploymentStatuses.Deleting)]
    [InlineData("deleted")]
    public async Task Deleted_failed_suspended_and_deleting_deployments_are_never_scaled(string status)
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, Settings, clock);
        _ = sluice.Services;
        var (load, _, autoscaler) = Parts(sluice);
        var deployment = await DeploymentAsync(database, clock.GetUtcNow(), min: 0, max: 10, target: 1, desired: status == DeploymentStatuses.Suspended ? 0 : 1,
            idleSeconds: 1, status: status == "deleted" ? DeploymentStatuses.Ready : status);
        if (status == "deleted")
        {
            await using var db = database.CreateContext();
            await db.Deployments.Where(d => d.Id == deployment.Id).ExecuteUpdateAsync(s => s.SetProperty(d => d.DeletedAt, clock.GetUtcNow()));
        }

        var replica = await ReplicaAsync(database, deployment, clock.GetUtcNow());
        for (var i = 0; i < 5; i++)
        {
            load.Enter(deployment.Id, replica);
        }

        await RoundAsync(sluice);
        clock.Advance(TimeSpan.FromMinutes(10));
        await RoundAsync(sluice);
        Assert.Equal(status == DeploymentStatuses.Suspended ? 0 : 1, await DesiredAsync(database, deployment.Id));
        Assert.Empty(await EventsAsync(database, deployment.Id, DeploymentEventKinds.Scaled));
        Assert.Null(autoscaler.Window(deployment.Id));
    }

    [Fact]
    public async Task A_decision_made_on_a_count_that_changed_meanwhile_is_not_written()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        var wallet = new TestWallet { Covers = 10 };
        await using var plain = new SluiceFactory(database, Settings, clock);
        await using var sluice = plain.WithWebHostBuilder(b => b.ConfigureTestServices(s => s.AddSingleton<IDeploymentBilling>(wallet)));
        _ = sluice.Services;
        var deployment = await DeploymentAsync(database, clock.GetUtcNow(), min: 1, max: 10, target: 1, desired: 1);
        var replica = await ReplicaAsync(database, deployment, clock.GetUtcNow());

        // The wallet is asked between the read and the write; meanwhile an operator's update sets 5.
        wallet.WhileAsked = () => SetDesiredAsync(database, deployment.Id, 5);
        var load = sluice.Services.GetRequiredService<DeploymentLoad>();
        load.Enter(deployment.Id, replica);
        load.Enter(deployment.Id, replica);
        await sluice.Services.GetRequiredService<DeploymentLoadReporter>().ReportAsync(CancellationToken.None);
        Assert.Equal(new AutoscaleRound(true, 0, 0), await sluice.Services.GetRequiredService<DeploymentAutoscaler>().TickAsync(CancellationToken.None));
        Assert.Equal(5, await DesiredAsync(database, deployment.Id));
        Assert.Empty(await EventsAsync(database, deployment.Id, DeploymentEventKinds.Scaled));
    }

    [Fact]
    public async Task A_count_set_from_outside_is_lowered_only_after_the_scale_down_delay()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, Settings, clock);
        _ = sluice.Services;
        var deployment = await DeploymentAsync(database, clock.GetUtcNow(), min: 1, max: 10, target: 1, desired: 1, scaleDownDelaySeconds: 300);
        await ReplicaAsync(database, deployment, clock.GetUtcNow());
        for (var t = 0; t < 10; t++)
        {
            clock.Advance(Tick);
            await RoundAsync(sluice);
        }

        // An update sets 4 with no load: the decider's earlier recommendations (1) do not lower it at once.
        await SetDesiredAsync(database, deployment.Id, 4);
        var setAt = clock.GetUtcNow();
        for (var t = 0; t < 200 && await DesiredAsync(database, deployment.Id) == 4; t++)
        {
            clock.Advance(Tick);
            await RoundAsync(sluice);
        }

        Assert.Equal(1, await DesiredAsync(database, deployment.Id));
        Assert.Equal(TimeSpan.FromSeconds(302), clock.GetUtcNow() - setAt); // seen at the first round after it (2 s), then 300 s
    }

    [Fact]
    public async Task A_server_writes_its_load_once_a_round_while_active_once_more_when_it_goes_quiet_and_nothing_when_idle()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, Settings, clock);
        _ = sluice.Services;
        var (load, reporter, _) = Parts(sluice);
        var deployment = Guid.NewGuid();
        var replica = Guid.NewGuid();
        Assert.Equal(0, await reporter.ReportAsync(CancellationToken.None));

        load.Enter(deployment, replica);
        Assert.Equal(1, await reporter.ReportAsync(CancellationToken.None));
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1, await reporter.ReportAsync(CancellationToken.None)); // still in flight: kept fresh
        load.Leave(deployment, replica);
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1, await reporter.ReportAsync(CancellationToken.None)); // the zeros, once
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(0, await reporter.ReportAsync(CancellationToken.None));

        await using var db = database.CreateContext();
        var row = await db.DeploymentLoadReports.SingleAsync();
        Assert.Equal((reporter.ServerId, deployment, 0, 0), (row.ServerId, row.DeploymentId, row.InFlight, row.Waiting));
        Assert.True((clock.GetUtcNow().AddSeconds(-1) - row.ReportedAt).Duration() < TimeSpan.FromMilliseconds(1));
        Assert.NotNull(row.LastRequestAt);

        // Its row removed behind its back (retention): the next write inserts it again.
        await db.DeploymentLoadReports.ExecuteDeleteAsync();
        load.Queued(deployment);
        Assert.Equal(1, await reporter.ReportAsync(CancellationToken.None));
        Assert.Equal(1, (await db.DeploymentLoadReports.AsNoTracking().SingleAsync()).Waiting);
    }

    [Fact]
    public async Task The_background_loops_scale_on_their_own_on_the_servers_clock()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, With(
            ("Deployments:Autoscaler:TickInterval", "00:00:00.200"), ("Deployments:Autoscaler:ReportInterval", "00:00:00.100"),
            ("Deployments:Autoscaler:ReportFreshness", "00:00:05"), ("Deployments:Autoscaler:LeaseDuration", "00:00:10")));
        _ = sluice.Services;
        var load = sluice.Services.GetRequiredService<DeploymentLoad>();
        var deployment = await DeploymentAsync(database, DateTimeOffset.UtcNow, min: 1, max: 10, target: 1, desired: 1);
        var replica = await ReplicaAsync(database, deployment, DateTimeOffset.UtcNow);
        load.Enter(deployment.Id, replica);
        load.Enter(deployment.Id, replica);
        await Eventually.TrueAsync(async () => await DesiredAsync(database, deployment.Id) == 2, "the autoscaler to scale to 2 on its own");
        Assert.True(sluice.Services.GetRequiredService<DeploymentAutoscaler>().IsLeader);
    }

    [Fact]
    public void Bad_autoscaler_settings_name_themselves()
    {
        var failures = Sluice.Hosting.SettingsValidator<AutoscalerOptions>.Failures(AutoscalerOptions.Section, new AutoscalerOptions
        {
            TickInterval = TimeSpan.Zero,
            PanicThreshold = 0.5,
            PanicWindow = TimeSpan.FromMinutes(20),
        });
        Assert.Equal(
            ["Deployments:Autoscaler:PanicThreshold: must be between 1 and 100",
             "Deployments:Autoscaler:PanicWindow: must be between 00:00:01 and 00:10:00",
             "Deployments:Autoscaler:PanicWindow: must not be longer than StableWindow",
             "Deployments:Autoscaler:TickInterval: must be between 00:00:00.1000000 and 00:10:00"],
            failures.Order(StringComparer.Ordinal));

        failures = Sluice.Hosting.SettingsValidator<AutoscalerOptions>.Failures(AutoscalerOptions.Section, new AutoscalerOptions
        {
            PanicWindow = TimeSpan.FromMinutes(2),
            LeaseDuration = TimeSpan.FromSeconds(2),
            ReportFreshness = TimeSpan.FromSeconds(1),
        });
        Assert.Equal(
            ["Deployments:Autoscaler:LeaseDuration: must be longer than TickInterval (the lease is renewed every tick)",
             "Deployments:Autoscaler:PanicWindow: must not be longer than StableWindow",
             "Deployments:Autoscaler:ReportFreshness: must be longer than ReportInterval"],
            failures.Distinct().Order(StringComparer.Ordinal)); // (the shared validator lists whole-object rules twice when only they fail)
        Assert.Empty(Sluice.Hosting.SettingsValidator<AutoscalerOptions>.Failures(AutoscalerOptions.Section, new AutoscalerOptions()));
    }

    private sealed class TestWallet : IDeploymentBilling
    {
        public int Covers { get; set; } = 2;

        public Func<Task>? WhileAsked { get; set; }

        public List<(Guid, int)> Asked { get; } = [];

        public async ValueTask<(bool Covered, string? Refusal)> CanRunAsync(Deployment deployment, int replicas, CancellationToken cancellationToken)
        {
            Asked.Add((deployment.Id, replicas));
            if (WhileAsked is not null)
            {
                await WhileAsked();
            }

            return replicas <= Covers ? (true, null) : (false, $"the wallet covers {Covers} replicas of this deployment");
        }
    }
}
