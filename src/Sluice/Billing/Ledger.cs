using System.Security.Cryptography;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Audit;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Billing;

public sealed record LedgerLine(Guid? OrganizationId, string AccountType, long AmountMicros);

public sealed record LedgerPosting(string IdempotencyKey, string Type, Guid? OrganizationId, string? Reference, IReadOnlyList<LedgerLine> Lines);

/// <summary>
/// The double-entry ledger. A posting is one balanced transaction (its lines sum to zero) with an idempotency key:
/// posting the same request again returns the first result; reusing the key for a different request is refused.
/// Customer accounts never go negative: their debits are conditional updates inside the transaction, so concurrent
/// postings on any number of replicas cannot overdraw them. Cached balances move in the same transaction as entries.
/// </summary>
public sealed class Ledger(SluiceDbContext db, AuditActor actor, IOptions<BillingOptions> options, TimeProvider time)
{
    public string Currency => options.Value.Currency;

    public async Task<(LedgerTransaction Transaction, bool Replayed)> PostAsync(LedgerPosting posting, CancellationToken ct)
    {
        if (posting.Lines.Count < 2 || posting.Lines.Any(l => l.AmountMicros == 0) || posting.Lines.Sum(l => l.AmountMicros) != 0)
        {
            throw new InvalidOperationException("A ledger transaction needs two or more non-zero lines that sum to zero.");
        }

        if (string.IsNullOrWhiteSpace(posting.IdempotencyKey) || posting.IdempotencyKey.Length > 200)
        {
            throw ApiProblem.Invalid("idempotencyKey", "must be 1 to 200 characters");
        }

        var hash = RequestHash(posting);
        if (await FindAsync(posting.IdempotencyKey, hash, ct) is { } earlier)
        {
            return (earlier, true);
        }

        var accounts = new Dictionary<(Guid?, string), Guid>();
        foreach (var line in posting.Lines)
        {
            accounts[(line.OrganizationId, line.AccountType)] = await AccountIdAsync(line.OrganizationId, line.AccountType, ct);
        }

        var now = time.GetUtcNow();
        var transaction = new LedgerTransaction
        {
            Id = Guid.CreateVersion7(now),
            IdempotencyKey = posting.IdempotencyKey,
            RequestHash = hash,
            Type = posting.Type,
            OrganizationId = posting.OrganizationId,
            Reference = posting.Reference,
            Actor = actor.Id,
            CreatedAt = now,
        };

        // Joins the caller's transaction when there is one (a lease and its ledger movement commit together).
        var outer = db.Database.CurrentTransaction;
        await using var dbTransaction = outer is null ? await db.Database.BeginTransactionAsync(ct) : null;
        try
        {
            foreach (var line in posting.Lines.OrderBy(l => accounts[(l.OrganizationId, l.AccountType)]))
            {
                var accountId = accounts[(line.OrganizationId, line.AccountType)];
                var amount = line.AmountMicros;
                var updated = AccountTypes.IsCustomer(line.AccountType) && amount < 0
                    ? await db.LedgerAccounts.Where(a => a.Id == accountId && a.BalanceMicros + amount >= 0)
                        .ExecuteUpdateAsync(set => set.SetProperty(a => a.BalanceMicros, a => a.BalanceMicros + amount), ct)
                    : await db.LedgerAccounts.Where(a => a.Id == accountId)
                        .ExecuteUpdateAsync(set => set.SetProperty(a => a.BalanceMicros, a => a.BalanceMicros + amount), ct);
                if (updated == 0)
                {
                    throw new InsufficientFundsException();
                }

                db.LedgerEntries.Add(new LedgerEntry { Id = Guid.CreateVersion7(now), TransactionId = transaction.Id, AccountId = accountId, AmountMicros = amount, CreatedAt = now });
            }

            db.LedgerTransactions.Add(transaction);
            await db.SaveChangesAsync(ct);
            if (dbTransaction is not null)
            {
                await dbTransaction.CommitAsync(ct);
            }

            return (transaction, false);
        }
        catch (DbUpdateException) when (outer is null)
        {
            // The same idempotency key committed concurrently: answer as a replay (or a conflict if the request differs).
            await dbTransaction!.RollbackAsync(ct);
            db.ChangeTracker.Clear();
            return (await FindAsync(posting.IdempotencyKey, hash, ct) ?? throw new InvalidOperationException("The ledger transaction could not be saved."), true);
        }
    }

    public async Task<long> BalanceAsync(Guid? owner, string accountType, CancellationToken ct)
    {
        Guid? organizationId = Owner(owner);
        return await db.LedgerAccounts.AsNoTracking()
            .Where(a => a.OrganizationId == organizationId && a.Type == accountType && a.Currency == Currency)
            .Select(a => (long?)a.BalanceMicros).SingleOrDefaultAsync(ct) ?? 0;
    }

    private async Task<LedgerTransaction?> FindAsync(string key, string hash, CancellationToken ct)
    {
        var existing = await db.LedgerTransactions.AsNoTracking().SingleOrDefaultAsync(t => t.IdempotencyKey == key, ct);
        if (existing is not null && existing.RequestHash != hash)
        {
            throw ApiProblem.Conflict("idempotencyKey", "was already used for a different request; use a new key");
        }

        return existing;
    }

    /// <summary>Platform accounts belong to no organization; they use <see cref="Guid.Empty"/> so the unique index covers them (NULLs never collide).</summary>
    public static Guid Owner(Guid? organizationId) => organizationId ?? Guid.Empty;

    private async Task<Guid> AccountIdAsync(Guid? owner, string type, CancellationToken ct)
    {
        Guid? organizationId = Owner(owner);
        var currency = Currency;
        var id = await db.LedgerAccounts.AsNoTracking()
            .Where(a => a.OrganizationId == organizationId && a.Type == type && a.Currency == currency)
            .Select(a => (Guid?)a.Id).SingleOrDefaultAsync(ct);
        if (id is { } existing)
        {
            return existing;
        }

        var account = new LedgerAccount { Id = Guid.CreateVersion7(), OrganizationId = organizationId, Type = type, Currency = currency, CreatedAt = time.GetUtcNow() };
        db.LedgerAccounts.Add(account);
        try
        {
            await db.SaveChangesAsync(ct);
            return account.Id;
        }
        catch (DbUpdateException)
        {
            db.ChangeTracker.Clear(); // created concurrently
            return await db.LedgerAccounts.AsNoTracking()
                .Where(a => a.OrganizationId == organizationId && a.Type == type && a.Currency == currency).Select(a => a.Id).SingleAsync(ct);
        }
        finally
        {
            db.Entry(account).State = EntityState.Detached;
        }
    }

    private static string RequestHash(LedgerPosting posting)
    {
        var text = new StringBuilder().Append(posting.Type).Append('|').Append(posting.OrganizationId).Append('|').Append(posting.Reference);
        foreach (var line in posting.Lines)
        {
            text.Append('|').Append(line.OrganizationId).Append(':').Append(line.AccountType).Append(':').Append(line.AmountMicros);
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }
}

/// <summary>A customer account would go negative.</summary>
public sealed class InsufficientFundsException() : Exception("The wallet does not hold enough funds.");
