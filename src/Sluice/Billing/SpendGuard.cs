using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Billing;

/// <summary>
/// Holds and settles request costs without a database round trip per request (docs/billing.md). Each replica leases
/// slices of an organization's wallet into its holds account (a conditional ledger debit, so leases never exceed the
/// balance, whatever the number of replicas), reserves each request's worst case from its slice in memory, settles the
/// actual cost when the request ends, and writes settled spend to the ledger every <see cref="BillingOptions.SettleInterval"/>.
/// </summary>
public sealed partial class SpendGuard(
    IServiceScopeFactory scopes, IOptions<BillingOptions> options, TimeProvider time, SpendJournal journal, ILogger<SpendGuard> logger)
{
    /// <summary>What <see cref="TryHoldOneAsync"/> answers for a purse evicted meanwhile: take a fresh one.</summary>
    private const long RetiredPurse = -1;

    private readonly ConcurrentDictionary<(Guid Org, Guid? Key, string? Period), Purse> _purses = new();

    public string Replica => journal.Replica;

    /// <summary>Purses in memory (each organization's wallet and each key's budget per period in use).</summary>
    internal int PurseCount => _purses.Count;

    /// <summary>A request's reservation: on the organization's wallet and on each of the key's spend limits.</summary>
    public sealed class Hold
    {
        internal Hold(long amount, List<(Purse Purse, long Generation)> parts)
        {
            AmountMicros = amount;
            Parts = parts;
        }

        public long AmountMicros { get; }

        /// <summary>Each budget held, with the generation of its lease (a lease swept in the meantime is not refilled).</summary>
        internal List<(Purse Purse, long Generation)> Parts { get; }
    }

    /// <summary>A key's spend limits, in micro-units (null: no limit).</summary>
    public sealed record KeyLimits(Guid KeyId, long? DailyMicros, long? MonthlyMicros, long? TotalMicros);

    /// <summary>
    /// Reserves <paramref name="amount"/> for a request on the organization's wallet and on every spend limit of the key;
    /// returns the hold, or what refused it (the wallet, or which limit).
    /// </summary>
    public async ValueTask<(Hold? Hold, string? Refusal)> TryHoldAsync(Guid orgId, KeyLimits? key, long amount, CancellationToken ct)
    {
        var budgets = new List<(Guid? Key, string? Period, long? Limit, string Name)> { (null, null, null, "the organization's wallet") };
        if (key is not null)
        {
            var today = time.GetUtcNow().UtcDateTime;
            if (key.DailyMicros is { } daily)
            {
                budgets.Add((key.KeyId, "d:" + today.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture), daily, "the key's daily spend limit"));
            }

            if (key.MonthlyMicros is { } monthly)
            {
                budgets.Add((key.KeyId, "m:" + today.ToString("yyyy-MM", System.Globalization.CultureInfo.InvariantCulture), monthly, "the key's monthly spend limit"));
            }

            if (key.TotalMicros is { } total)
            {
                budgets.Add((key.KeyId, "total", total, "the key's total spend limit"));
            }
        }

        var taken = new List<(Purse Purse, long Generation)>();
        try
        {
            foreach (var (keyId, period, limit, name) in budgets)
            {
                Purse purse;
                long? held;
                do
                {
                    purse = _purses.GetOrAdd((orgId, keyId, period), b => new Purse(b.Org, b.Key, b.Period));
                    purse.Limit = limit;
                    held = await TryHoldOneAsync(purse, amount, ct);
                }
                while (held == RetiredPurse); // evicted between the lookup and the hold: the next lookup makes a new one

                if (held is not { } generation)
                {
                    Release(taken, amount);
                    return (null, name);
                }

                taken.Add((purse, generation));
            }
        }
        catch (Exception)
        {
            // A lease that could not be taken or renewed (the database is unavailable, the request was cancelled):
            // what this request already reserved on the other budgets goes back to them.
            Release(taken, amount);
            throw;
        }

        return (new Hold(amount, taken), null);
    }

    /// <summary>
    /// Reserves <paramref name="amount"/> on the organization's wallet through a purse of its own named
    /// <paramref name="purse"/> (GPU time: <c>gpu</c>): its own lease (a <see cref="WalletLease"/> whose
    /// <see cref="WalletLease.Period"/> is the purse's name), so what it settles with <see cref="SettleRecordedAsync"/>
    /// never mixes with the token path's journaled running totals. Null when the wallet cannot cover it.
    /// </summary>
    public async ValueTask<Hold?> TryHoldFromPurseAsync(Guid orgId, string purse, long amount, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(amount);
        ArgumentException.ThrowIfNullOrEmpty(purse);
        while (true)
        {
            var wallet = _purses.GetOrAdd((orgId, null, purse), b => new Purse(b.Org, b.Key, b.Period));
            var held = await TryHoldOneAsync(wallet, amount, ct, leaseShortfall: true);
            if (held == RetiredPurse)
            {
                continue;
            }

            return held is { } generation ? new Hold(amount, [(wallet, generation)]) : null;
        }
    }

    /// <summary>What this replica's purse <paramref name="purse"/> of the organization has leased and not reserved (in memory).</summary>
    public long Unreserved(Guid orgId, string purse) => _purses.TryGetValue((orgId, null, purse), out var wallet) ? wallet.Unreserved : 0;

    /// <summary>
    /// Settles a hold taken with <see cref="TryHoldFromPurseAsync"/> in ONE database transaction with the caller's own
    /// record of what was charged (<paramref name="record"/>, on the same context): the lease's <c>settled</c>, the ledger
    /// posting <c>customer_holds → revenue</c> under <paramref name="idempotencyKey"/> and the record commit together or not
    /// at all. Nothing of it lives only in memory or in the spend journal, so a crash can neither lose the charge nor
    /// apply it twice: the record and the money cannot diverge. <paramref name="record"/> answers false when the charge
    /// is not to be made (another replica made it first); then nothing is written and the hold is released whole.
    /// Answers whether the charge was written. Throws (with the hold released whole) when the database fails.
    /// </summary>
    public async Task<bool> SettleRecordedAsync(
        Hold hold, long costMicros, string idempotencyKey, Func<SluiceDbContext, CancellationToken, Task<bool>> record, CancellationToken ct)
    {
        if (hold.Parts is not [var (purse, generation)] || purse.KeyId is not null)
        {
            throw new InvalidOperationException("A recorded settle takes a hold on one wallet purse (TryHoldFromPurseAsync).");
        }

        var cost = Math.Clamp(costMicros, 0, hold.AmountMicros);
        await purse.Gate.WaitAsync(ct);
        var written = false;
        try
        {
            if (purse.LeaseId is not { } leaseId || !purse.IsGeneration(generation))
            {
                return false; // its lease was swept meanwhile: the hold's money is back in the wallet; charge again next round
            }

            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            await using var transaction = await db.Database.BeginTransactionAsync(CancellationToken.None);
            if (!await record(db, CancellationToken.None))
            {
                await transaction.RollbackAsync(CancellationToken.None);
                return false;
            }

            var now = time.GetUtcNow();
            if (await db.WalletLeases.Where(l => l.Id == leaseId && !l.Released).ExecuteUpdateAsync(set => set
                    .SetProperty(l => l.SettledMicros, l => l.SettledMicros + cost)
                    .SetProperty(l => l.ExpiresAt, now + options.Value.LeaseTtl), CancellationToken.None) == 0)
            {
                await transaction.RollbackAsync(CancellationToken.None);
                purse.Forget();
                return false;
            }

            if (cost > 0)
            {
                await scope.ServiceProvider.GetRequiredService<Ledger>().PostAsync(new LedgerPosting(idempotencyKey, "gpu_time", purse.OrganizationId, null,
                    [new LedgerLine(purse.OrganizationId, AccountTypes.CustomerHolds, -cost), new LedgerLine(null, AccountTypes.Revenue, cost)]), CancellationToken.None);
            }

            await transaction.CommitAsync(CancellationToken.None);
            written = true;
            purse.SettledDirectly(hold.AmountMicros, cost, generation);
            return true;
        }
        finally
        {
            if (!written)
            {
                purse.Settle(hold.AmountMicros, 0, generation); // released whole; nothing charged, nothing journaled
            }

            purse.Gate.Release();
        }
    }

    /// <summary>Releases a hold without charging anything.</summary>
    public static void Release(Hold hold)
    {
        foreach (var (purse, generation) in hold.Parts)
        {
            purse.Settle(hold.AmountMicros, 0, generation);
        }
    }

    private static void Release(List<(Purse Purse, long Generation)> taken, long amount)
    {
        foreach (var (purse, generation) in taken)
        {
            purse.Settle(amount, 0, generation);
        }
    }

    /// <summary>The lease generation the hold was taken from, or null when the budget cannot cover it.</summary>
    /// <param name="purse">The budget to hold on.</param>
    /// <param name="amount">The hold, in micro-units.</param>
    /// <param name="ct">Cancels waiting for the purse and the lease.</param>
    /// <param name="leaseShortfall">When neither a slice nor the whole amount can be leased, lease only what the purse lacks
    /// (the GPU-time purse holds large amounts: what it already leased counts).</param>
    private async ValueTask<long?> TryHoldOneAsync(Purse purse, long amount, CancellationToken ct, bool leaseShortfall = false)
    {
        if (purse.TryTake(amount, time.GetUtcNow()) is { } fast)
        {
            return fast;
        }

        await purse.Gate.WaitAsync(ct);
        try
        {
            if (purse.Retired)
            {
                return RetiredPurse;
            }

            if (purse.NeedsRenewal(time.GetUtcNow()))
            {
                await SettlePurseAsync(purse, returnUnused: false, ct); // renews the lease, or forgets it if it was swept
            }

            if (purse.TryTake(amount, time.GetUtcNow()) is { } renewed)
            {
                return renewed;
            }

            var slice = Math.Max(amount, options.Value.LeaseSliceMicros);
            if (!await LeaseAsync(purse, slice, ct) && (slice == amount || !await LeaseAsync(purse, amount, ct)))
            {
                var shortfall = amount - purse.Unreserved;
                if (!leaseShortfall || shortfall <= 0 || shortfall >= amount || !await LeaseAsync(purse, shortfall, ct))
                {
                    return null;
                }
            }

            return purse.TryTake(amount, time.GetUtcNow());
        }
        finally
        {
            purse.Gate.Release();
        }
    }

    /// <summary>
    /// Turns a hold into its actual cost (never more than the hold) and frees the rest. The charge is journaled (one
    /// write to the local spend journal, no fsync, no database) before it can reach the ledger, so a replica killed
    /// before its next settle round loses none of it (<see cref="SpendJournal"/>).
    /// </summary>
    public void Settle(Hold hold, long costMicros)
    {
        var cost = Math.Clamp(costMicros, 0, hold.AmountMicros);
        Span<(Guid Lease, long Charged)> charges = stackalloc (Guid, long)[hold.Parts.Count];
        var count = 0;
        foreach (var (purse, generation) in hold.Parts)
        {
            if (purse.Settle(hold.AmountMicros, cost, generation) is { } charged && cost > 0)
            {
                charges[count++] = charged;
            }
        }

        journal.AppendCharge(charges[..count]);
    }

    /// <summary>
    /// Writes settled spend to the ledger and renews leases; with <paramref name="returnUnused"/>, gives back idle slices.
    /// Purses left without a lease and without money (closed, swept, or of a past day or month) are evicted.
    /// </summary>
    public async Task SettleAsync(bool returnUnused, CancellationToken ct)
    {
        var journaled = journal.Sequence; // every charge journaled so far is in some purse's unsettled spend now
        foreach (var (budget, purse) in _purses)
        {
            await purse.Gate.WaitAsync(ct);
            try
            {
                await SettlePurseAsync(purse, returnUnused, ct);
                if (purse.TryRetire())
                {
                    _purses.TryRemove(KeyValuePair.Create(budget, purse));
                }
            }
            finally
            {
                purse.Gate.Release();
            }
        }

        journal.SettledThrough(journaled);
    }

    /// <summary>
    /// Closes leases whose replica stopped renewing them and did not come back to replay its spend journal within
    /// <see cref="BillingOptions.UnreplayedLeaseDeadline"/> after they expired: what they did not settle returns to the
    /// wallet. Before the deadline an expired lease stays held, since its replica may have served part of it. Safe on
    /// several replicas at once.
    /// </summary>
    public async Task<int> SweepAsync(CancellationToken ct)
    {
        List<(Guid Id, string Replica)> expired;
        var before = time.GetUtcNow() - options.Value.UnreplayedLeaseDeadline;
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            expired = (await db.WalletLeases.AsNoTracking().Where(l => !l.Released && l.ExpiresAt < before).Select(l => new { l.Id, l.Replica }).ToListAsync(ct))
                .Select(l => (l.Id, l.Replica)).ToList();
        }

        var swept = 0;
        foreach (var (id, replica) in expired)
        {
            if (await CloseDeadLeaseAsync(id, 0, before, ct) is not null)
            {
                LeaseReleasedUnreplayed(logger, id, replica);
                swept++;
            }
        }

        return swept;
    }

    /// <summary>
    /// Closes a lease whose replica is gone: settles what its journal says was charged beyond what the lease recorded as
    /// settled (<paramref name="charged"/> is the journal's running total; 0 when there is no journal) and returns the rest.
    /// Exactly once, whoever races (a conditional claim of the row). Returns what it settled, or null if the lease was
    /// already closed, renewed, or (with <paramref name="expiredBefore"/>) not expired long enough.
    /// </summary>
    internal async Task<long?> CloseDeadLeaseAsync(Guid leaseId, long charged, DateTimeOffset? expiredBefore, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        await using var transaction = await db.Database.BeginTransactionAsync(ct);
        var claim = db.WalletLeases.Where(l => l.Id == leaseId && !l.Released);
        if (expiredBefore is { } before)
        {
            claim = claim.Where(l => l.ExpiresAt < before);
        }

        if (await claim.ExecuteUpdateAsync(set => set.SetProperty(l => l.Released, true), ct) == 0)
        {
            return null; // another replica closed it, or its owner renewed it
        }

        var lease = await db.WalletLeases.AsNoTracking().SingleAsync(l => l.Id == leaseId, ct);
        var open = lease.AmountMicros - lease.SettledMicros - lease.ReturnedMicros;
        var spent = Math.Clamp(charged - lease.SettledMicros, 0, Math.Max(open, 0));
        var remaining = open - spent;
        await db.WalletLeases.Where(l => l.Id == leaseId).ExecuteUpdateAsync(set => set
            .SetProperty(l => l.SettledMicros, l => l.SettledMicros + spent)
            .SetProperty(l => l.ReturnedMicros, l => l.ReturnedMicros + remaining), ct);
        if (lease.KeyId is { } keyId)
        {
            if (spent + remaining != 0)
            {
                await db.Set<KeyBudget>().Where(b => b.KeyId == keyId && b.Period == lease.Period)
                    .ExecuteUpdateAsync(set => set.SetProperty(b => b.SpentMicros, b => b.SpentMicros + spent).SetProperty(b => b.LeasedMicros, b => b.LeasedMicros - spent - remaining), ct);
            }
        }
        else
        {
            var ledger = scope.ServiceProvider.GetRequiredService<Ledger>();
            if (spent > 0)
            {
                await ledger.PostAsync(new LedgerPosting($"lease-replay:{leaseId}", "usage", lease.OrganizationId, $"lease {leaseId} replayed",
                    [new LedgerLine(lease.OrganizationId, AccountTypes.CustomerHolds, -spent), new LedgerLine(null, AccountTypes.Revenue, spent)]), ct);
            }

            if (remaining > 0)
            {
                await ledger.PostAsync(new LedgerPosting(
                    $"lease-sweep:{leaseId}", "lease_return", lease.OrganizationId, $"lease {leaseId} closed",
                    [new LedgerLine(lease.OrganizationId, AccountTypes.CustomerHolds, -remaining), new LedgerLine(lease.OrganizationId, AccountTypes.CustomerWallet, remaining)]), ct);
            }
        }

        await transaction.CommitAsync(ct);
        return spent;
    }

    private DateTimeOffset RenewBy(DateTimeOffset now) => now + (options.Value.LeaseTtl * 2 / 3);

    private async Task<bool> LeaseAsync(Purse purse, long slice, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        var now = time.GetUtcNow();
        var expires = now + options.Value.LeaseTtl;
        if (purse.KeyId is { } budgetKey && !await db.Set<KeyBudget>().AnyAsync(b => b.KeyId == budgetKey && b.Period == purse.Period, ct))
        {
            try
            {
                db.Set<KeyBudget>().Add(new KeyBudget { KeyId = budgetKey, Period = purse.Period! });
                await db.SaveChangesAsync(ct);
            }
            catch (DbUpdateException)
            {
                // created concurrently
            }

            db.ChangeTracker.Clear();
        }

        await using var transaction = await db.Database.BeginTransactionAsync(ct);
        try
        {
            if (purse.KeyId is { } keyId)
            {
                // The key's limit: spent and leased (by every replica) never exceed it.
                var limit = purse.Limit ?? 0;
                if (await db.Set<KeyBudget>().Where(b => b.KeyId == keyId && b.Period == purse.Period && b.SpentMicros + b.LeasedMicros + slice <= limit)
                        .ExecuteUpdateAsync(set => set.SetProperty(b => b.LeasedMicros, b => b.LeasedMicros + slice), ct) == 0)
                {
                    throw new InsufficientFundsException();
                }
            }

            var leaseId = purse.LeaseId;
            if (leaseId is { } existing && await db.WalletLeases.Where(l => l.Id == existing && !l.Released)
                    .ExecuteUpdateAsync(set => set.SetProperty(l => l.AmountMicros, l => l.AmountMicros + slice).SetProperty(l => l.ExpiresAt, expires), ct) == 1)
            {
                // topped up the replica's lease
            }
            else
            {
                leaseId = Guid.CreateVersion7(now);
                db.WalletLeases.Add(new WalletLease
                {
                    Id = leaseId.Value, OrganizationId = purse.OrganizationId, KeyId = purse.KeyId, Period = purse.Period, Replica = Replica,
                    AmountMicros = slice, ExpiresAt = expires, CreatedAt = now,
                });
                await db.SaveChangesAsync(ct);
                purse.Reset(leaseId.Value);
            }

            if (purse.KeyId is null)
            {
                await scope.ServiceProvider.GetRequiredService<Ledger>().PostAsync(new LedgerPosting(
                    $"lease:{leaseId}:{purse.NextSequence()}", "lease", purse.OrganizationId, null,
                    [new LedgerLine(purse.OrganizationId, AccountTypes.CustomerWallet, -slice), new LedgerLine(purse.OrganizationId, AccountTypes.CustomerHolds, slice)]), ct);
            }

            await transaction.CommitAsync(ct);
            purse.AddLeased(slice, RenewBy(now));
            return true;
        }
        catch (InsufficientFundsException)
        {
            await transaction.RollbackAsync(ct);
            return false;
        }
    }

    private async Task SettlePurseAsync(Purse purse, bool returnUnused, CancellationToken cancellationToken)
    {
        if (purse.LeaseId is not { } leaseId)
        {
            return;
        }

        // Once spend is taken out of the purse, the write runs to its end: a round cancelled half-way (a stopping
        // server) would otherwise drop what it had taken, and a commit cut short leaves its outcome unknown.
        cancellationToken.ThrowIfCancellationRequested();
        var ct = CancellationToken.None;

        var spent = purse.TakeUnsettled();
        var returning = returnUnused ? purse.TakeIdle() : 0;
        var closing = returnUnused && purse.IsEmpty; // nothing held, nothing left: the lease can be closed
        var now = time.GetUtcNow();
        var expires = now + options.Value.LeaseTtl;
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
            var ledger = scope.ServiceProvider.GetRequiredService<Ledger>();
            await using var transaction = await db.Database.BeginTransactionAsync(ct);
            var renewed = await db.WalletLeases.Where(l => l.Id == leaseId && !l.Released)
                .ExecuteUpdateAsync(set => set
                    .SetProperty(l => l.SettledMicros, l => l.SettledMicros + spent)
                    .SetProperty(l => l.ReturnedMicros, l => l.ReturnedMicros + returning)
                    .SetProperty(l => l.ExpiresAt, expires)
                    .SetProperty(l => l.Released, l => closing && l.AmountMicros == l.SettledMicros + spent + l.ReturnedMicros + returning), ct);
            if (renewed == 0)
            {
                // Swept while this replica could not renew it: its holds were returned; start afresh.
                await transaction.RollbackAsync(ct);
                purse.Forget();
                return;
            }

            if (purse.KeyId is { } keyId)
            {
                if (spent + returning > 0)
                {
                    await db.Set<KeyBudget>().Where(b => b.KeyId == keyId && b.Period == purse.Period)
                        .ExecuteUpdateAsync(set => set.SetProperty(b => b.SpentMicros, b => b.SpentMicros + spent).SetProperty(b => b.LeasedMicros, b => b.LeasedMicros - spent - returning), ct);
                }
            }
            else if (spent > 0)
            {
                await ledger.PostAsync(new LedgerPosting($"settle:{leaseId}:{purse.NextSequence()}", "usage", purse.OrganizationId, null,
                    [new LedgerLine(purse.OrganizationId, AccountTypes.CustomerHolds, -spent), new LedgerLine(null, AccountTypes.Revenue, spent)]), ct);
            }

            if (returning > 0 && purse.KeyId is null)
            {
                await ledger.PostAsync(new LedgerPosting($"return:{leaseId}:{purse.NextSequence()}", "lease_return", purse.OrganizationId, null,
                    [new LedgerLine(purse.OrganizationId, AccountTypes.CustomerHolds, -returning), new LedgerLine(purse.OrganizationId, AccountTypes.CustomerWallet, returning)]), ct);
            }

            await transaction.CommitAsync(ct);
            purse.Renewed(RenewBy(now), released: closing);
        }
        catch (Exception)
        {
            purse.Restore(spent, returning); // written next round
            throw;
        }
    }

    /// <summary>One organization's money on this replica: leased, reserved by requests in flight, spent but not yet written.</summary>
    internal sealed class Purse(Guid organizationId, Guid? keyId, string? period)
    {
        private readonly Lock _lock = new();
        private long _available;
        private long _reserved;
        private long _unsettled;
        private long _sequence;
        private long _generation;
        private long _charged;
        private DateTimeOffset _renewBy;

        /// <summary>Evicted from the guard's map: no hold or lease may be taken from it any more (set under its gate).</summary>
        public bool Retired { get; private set; }

        public Guid OrganizationId { get; } = organizationId;

        /// <summary>Set for a key's spend-limit budget; null for the wallet.</summary>
        public Guid? KeyId { get; } = keyId;

        public string? Period { get; } = period;

        public long? Limit { get; set; }

        public SemaphoreSlim Gate { get; } = new(1, 1);

        public Guid? LeaseId { get; private set; }

        public bool IsEmpty
        {
            get
            {
                lock (_lock)
                {
                    return _available == 0 && _reserved == 0 && _unsettled == 0;
                }
            }
        }

        public long NextSequence() => Interlocked.Increment(ref _sequence);

        public long Unreserved
        {
            get
            {
                lock (_lock)
                {
                    return LeaseId is null ? 0 : _available;
                }
            }
        }

        public bool IsGeneration(long generation)
        {
            lock (_lock)
            {
                return generation == _generation;
            }
        }

        /// <summary>A hold whose cost was written to the database with the lease's settled amount: nothing left to settle.</summary>
        public void SettledDirectly(long held, long cost, long generation)
        {
            lock (_lock)
            {
                if (generation != _generation)
                {
                    return;
                }

                _reserved -= held;
                _available += held - cost;
            }
        }


        /// <summary>The lease generation the amount was taken from, or null.</summary>
        public long? TryTake(long amount, DateTimeOffset now)
        {
            lock (_lock)
            {
                // Past two thirds of its life the lease could soon be swept; the slow path renews it first.
                if (LeaseId is null || _available < amount || now >= _renewBy)
                {
                    return null;
                }

                _available -= amount;
                _reserved += amount;
                return _generation;
            }
        }

        /// <summary>Settles a hold; returns its lease and the running total charged on that lease (for the journal), or null.</summary>
        public (Guid Lease, long Charged)? Settle(long held, long cost, long generation)
        {
            lock (_lock)
            {
                if (generation != _generation || LeaseId is not { } lease)
                {
                    // Taken from a lease that was swept (its money already returned): the cost goes unbilled, and
                    // nothing flows into the current lease that it never had.
                    return null;
                }

                _reserved -= held;
                _available += held - cost;
                _unsettled += cost;
                _charged += cost;
                return (lease, _charged);
            }
        }

        /// <summary>Under the gate: retires the purse if it holds nothing and has no lease, so it can be evicted.</summary>
        public bool TryRetire()
        {
            lock (_lock)
            {
                if (LeaseId is not null || _available != 0 || _reserved != 0 || _unsettled != 0)
                {
                    return false;
                }

                Retired = true;
                return true;
            }
        }

        public bool NeedsRenewal(DateTimeOffset now)
        {
            lock (_lock)
            {
                return LeaseId is not null && now >= _renewBy;
            }
        }

        public void AddLeased(long slice, DateTimeOffset renewBy)
        {
            lock (_lock)
            {
                _available += slice;
                _renewBy = renewBy;
            }
        }

        /// <summary>A new lease replaces one that was closed or swept: a new generation, nothing carried over.</summary>
        public void Reset(Guid leaseId)
        {
            lock (_lock)
            {
                LeaseId = leaseId;
                _generation++;
                _available = 0;
                _reserved = 0;
                _unsettled = 0;
                _charged = 0;
            }
        }

        public long TakeUnsettled()
        {
            lock (_lock)
            {
                var spent = _unsettled;
                _unsettled = 0;
                return spent;
            }
        }

        public long TakeIdle()
        {
            lock (_lock)
            {
                if (_reserved > 0)
                {
                    return 0;
                }

                var idle = _available;
                _available = 0;
                return idle;
            }
        }

        public void Restore(long spent, long returning)
        {
            lock (_lock)
            {
                _unsettled += spent;
                _available += returning;
            }
        }

        public void Renewed(DateTimeOffset renewBy, bool released)
        {
            lock (_lock)
            {
                _renewBy = renewBy;
                if (released)
                {
                    LeaseId = null;
                }
            }
        }

        public void Forget()
        {
            lock (_lock)
            {
                LeaseId = null;
                _generation++;
                _available = 0;
                _reserved = 0;
                _unsettled = 0;
                _charged = 0;
            }
        }
    }
}

/// <summary>
/// Writes settled spend and renews leases; sweeps expired leases; on shutdown, once the server has drained its
/// in-flight requests (<see cref="StoppedAsync"/> runs after every service stopped), settles and returns everything.
/// Through a database outage a failed round keeps its spend in memory (<see cref="SpendGuard"/> restores it) and the
/// next round writes it. After an outage this replica sweeps nothing until the database has been reachable for a full
/// <see cref="BillingOptions.LeaseTtl"/>: every live replica renews its own leases within a settle interval of the
/// database's return, so only a dead replica's lease is still expired by then (otherwise a live replica's unsettled
/// spend would be handed back to the wallet and never billed). A shutdown settle that fails is logged, never thrown.
/// </summary>
internal sealed partial class SpendSettler(
    SpendGuard guard,
    SpendJournal journal,
    IOptions<BillingOptions> options,
    DatabaseAvailability availability,
    TimeProvider time,
    ILogger<SpendSettler> logger,
    BackgroundHealth? health = null)
    : SupervisedService(health), IHostedLifecycleService
{
    protected override async Task RunAsync(CancellationToken stoppingToken)
    {
        var round = 0;
        var replayed = false;
        try
        {
            // A dead predecessor's journal in this data directory: its spend is settled and its leases closed first.
            await journal.ReplayPredecessorsAsync(guard, stoppingToken);
            replayed = true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            availability.Observe(ex);
            ReplayFailed(logger, ex.GetType().Name); // retried every round until it succeeds
        }

        await PeriodicWork.RunAsync(options.Value.SettleInterval, time, logger, "Settling spend", async ct =>
        {
            round++;
            try
            {
                if (!replayed || round % 5 == 0)
                {
                    // Again every few rounds: a replica sharing this data directory may have died meanwhile.
                    await journal.ReplayPredecessorsAsync(guard, ct);
                    replayed = true;
                }

                try
                {
                    await guard.SettleAsync(returnUnused: round % 30 == 0, ct);
                }
                finally
                {
                    journal.Roll(); // a new segment; the last one fsynced; segments the database caught up with deleted
                }

                if (round % 5 == 0 && availability.StableFor(options.Value.LeaseTtl))
                {
                    await guard.SweepAsync(ct);
                }
            }
            catch (Exception ex)
            {
                availability.Observe(ex);
                throw;
            }
        }, stoppingToken, Health);
    }

    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        try
        {
            await guard.SettleAsync(returnUnused: true, CancellationToken.None);
        }
        catch (Exception ex)
        {
            // The database is unavailable: the unsettled spend cannot be written now. Throwing here would abort the
            // process; the spend stays in this replica's journal, which its successor on this data directory replays
            // (docs/billing.md).
            ShutdownSettleFailed(logger, ex.GetType().Name);
        }
        finally
        {
            journal.Roll();
        }
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(110, LogLevel.Critical, "Settling spend on shutdown failed ({ExceptionType}); spend not yet written stays in the spend journal for the next start on this data directory")]
    private static partial void ShutdownSettleFailed(ILogger logger, string exceptionType);
}

public sealed partial class SpendGuard
{
    [LoggerMessage(1104, LogLevel.Warning, "Lease {LeaseId} of replica {Replica} was not replayed by its replica within Billing:UnreplayedLeaseDeadline; what it did not settle returned to the wallet (any spend it had not settled goes unbilled)")]
    private static partial void LeaseReleasedUnreplayed(ILogger logger, Guid leaseId, string replica);
}

internal sealed partial class SpendSettler
{
    [LoggerMessage(1105, LogLevel.Warning, "Replaying dead replicas' spend journals failed ({ExceptionType}); will retry")]
    private static partial void ReplayFailed(ILogger logger, string exceptionType);
}
