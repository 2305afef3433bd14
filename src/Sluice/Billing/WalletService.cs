using Microsoft.EntityFrameworkCore;
using Sluice.Audit;
using Sluice.Hosting;
using Sluice.Storage;

namespace Sluice.Billing;

public sealed record CreditRequest(decimal? AmountMicros, string? Currency, string? Reason, string? IdempotencyKey, bool? Promotional);

public sealed record TransactionLine(string Account, long AmountMicros);

public sealed record TransactionResponse(Guid Id, string Type, string? Reference, string Actor, DateTimeOffset CreatedAt, IReadOnlyList<TransactionLine> Lines);

/// <summary>
/// A wallet: <see cref="BalanceMicros"/> is spendable; <see cref="HeldMicros"/> is leased by servers against requests in
/// flight and comes back, settled or unused, within seconds.
/// </summary>
public sealed record WalletResponse(Guid OrganizationId, string Currency, long BalanceMicros, long HeldMicros,
    IReadOnlyList<TransactionResponse> Transactions, DateTimeOffset? NextBefore);

/// <summary>One movement of a wallet, with the balance it left (metadata only: kind, amount, reference).</summary>
public sealed record WalletEntry(Guid Id, DateTimeOffset Time, string Type, string? Reference, long AmountMicros, long BalanceAfterMicros);

/// <summary>A page of a wallet's movements, newest first; <see cref="Page"/> counts from 1.</summary>
public sealed record WalletEntryPage(IReadOnlyList<WalletEntry> Entries, int Page, int PageSize, bool HasMore);

/// <summary>Organizations' wallets: operators' credits and what an organization sees of its money.</summary>
public sealed class WalletService(SluiceDbContext db, Ledger ledger, AuditLog audit)
{
    public const int MaxPage = 200;

    /// <summary>An operator's credit (paid or promotional). Amounts are integer micro-units of the installation's currency.</summary>
    public async Task<TransactionResponse> CreditAsync(Guid orgId, CreditRequest request, CancellationToken ct)
    {
        var errors = new FieldErrors();
        long amount = 0;
        if (request.AmountMicros is not { } value || value <= 0 || value != decimal.Truncate(value) || value > long.MaxValue / 4)
        {
            errors.Add("amountMicros", "must be a positive whole number of micro-units (1 USD = 1000000)");
        }
        else
        {
            amount = (long)value;
        }

        if (request.Currency is { } currency && currency != ledger.Currency)
        {
            errors.Add("currency", $"this installation bills in {ledger.Currency}");
        }

        if (string.IsNullOrWhiteSpace(request.Reason) || request.Reason.Length > 200)
        {
            errors.Add("reason", "is required (at most 200 characters): why the credit is given");
        }

        errors.ThrowIfAny();
        if (!await db.Organizations.AnyAsync(o => o.Id == orgId, ct))
        {
            throw ApiProblem.NotFound("organization");
        }

        var promotional = request.Promotional == true;
        var posting = new LedgerPosting(
            request.IdempotencyKey ?? $"credit:{Guid.NewGuid():N}",
            promotional ? "promotional_credit" : "manual_credit",
            orgId,
            request.Reason!.Trim(),
            [
                new LedgerLine(null, promotional ? AccountTypes.Promotions : AccountTypes.ManualAdjustments, -amount),
                new LedgerLine(orgId, AccountTypes.CustomerWallet, amount),
            ]);
        // The posting and its audit entry commit together; a concurrent request with the same key replays on the retry.
        LedgerTransaction transaction;
        for (var attempt = 1; ; attempt++)
        {
            await using var dbTransaction = await db.Database.BeginTransactionAsync(ct);
            try
            {
                (transaction, var replayed) = await ledger.PostAsync(posting, ct);
                if (!replayed)
                {
                    audit.Record("wallet.credit", $"ledger:{transaction.Id} {amount} {ledger.Currency}{(promotional ? " promotional" : "")}", orgId);
                    await db.SaveChangesAsync(ct);
                }

                await dbTransaction.CommitAsync(ct);
                break;
            }
            catch (DbUpdateException) when (attempt == 1)
            {
                await dbTransaction.RollbackAsync(ct);
                db.ChangeTracker.Clear();
            }
        }

        return (await TransactionsAsync(orgId, null, 1, transaction.Id, ct)).Single();
    }

    public async Task<WalletResponse> WalletAsync(Guid orgId, DateTimeOffset? before, int? limit, CancellationToken ct)
    {
        var take = Math.Clamp(limit ?? 50, 1, MaxPage);
        var balance = await ledger.BalanceAsync(orgId, AccountTypes.CustomerWallet, ct);
        var held = await ledger.BalanceAsync(orgId, AccountTypes.CustomerHolds, ct);
        var transactions = await TransactionsAsync(orgId, before, take + 1, null, ct);
        var page = transactions.Take(take).ToList();
        return new WalletResponse(orgId, ledger.Currency, balance, held, page,
            transactions.Count > take ? page[^1].CreatedAt : null);
    }

    /// <summary>
    /// The wallet's movements, newest first, <paramref name="pageSize"/> to a page, each with the balance after it: the
    /// balance now less the movements newer than it.
    /// </summary>
    public async Task<WalletEntryPage> EntriesAsync(Guid orgId, int page, int pageSize, CancellationToken ct)
    {
        page = Math.Clamp(page, 1, 100_000);
        pageSize = Math.Clamp(pageSize, 1, MaxPage);
        Guid? owner = orgId;
        var account = await db.LedgerAccounts.AsNoTracking()
            .Where(a => a.OrganizationId == owner && a.Type == AccountTypes.CustomerWallet && a.Currency == ledger.Currency)
            .Select(a => (Guid?)a.Id).SingleOrDefaultAsync(ct);
        if (account is not { } accountId)
        {
            return new WalletEntryPage([], page, pageSize, false);
        }

        var entries = db.LedgerEntries.AsNoTracking().Where(e => e.AccountId == accountId)
            .OrderByDescending(e => e.CreatedAt).ThenByDescending(e => e.Id);
        var skip = (page - 1) * pageSize;
        var balance = await db.LedgerEntries.Where(e => e.AccountId == accountId).SumAsync(e => e.AmountMicros, ct);
        var newer = skip == 0 ? 0 : await entries.Take(skip).Select(e => e.AmountMicros).SumAsync(ct);
        var rows = await entries.Skip(skip).Take(pageSize + 1)
            .Join(db.LedgerTransactions, e => e.TransactionId, t => t.Id, (e, t) => new { e.Id, e.CreatedAt, t.Type, t.Reference, e.AmountMicros })
            .ToListAsync(ct);
        var after = balance - newer;
        var result = new List<WalletEntry>();
        foreach (var row in rows.OrderByDescending(r => r.CreatedAt).ThenByDescending(r => r.Id).Take(pageSize))
        {
            result.Add(new WalletEntry(row.Id, row.CreatedAt, row.Type, row.Reference, row.AmountMicros, after));
            after -= row.AmountMicros;
        }

        return new WalletEntryPage(result, page, pageSize, rows.Count > pageSize);
    }

    private async Task<List<TransactionResponse>> TransactionsAsync(Guid orgId, DateTimeOffset? before, int take, Guid? only, CancellationToken ct)
    {
        var query = db.LedgerTransactions.AsNoTracking().Where(t => t.OrganizationId == orgId);
        if (only is { } id)
        {
            query = query.Where(t => t.Id == id);
        }

        if (before is { } cursor)
        {
            query = query.Where(t => t.CreatedAt < cursor);
        }

        var transactions = await query.OrderByDescending(t => t.CreatedAt).Take(take).ToListAsync(ct);
        var ids = transactions.Select(t => t.Id).ToList();
        var lines = await db.LedgerEntries.AsNoTracking().Where(e => ids.Contains(e.TransactionId))
            .Join(db.LedgerAccounts, e => e.AccountId, a => a.Id, (e, a) => new { e.TransactionId, a.OrganizationId, a.Type, e.AmountMicros })
            .ToListAsync(ct);

        // An organization sees its own accounts' lines; the platform side shows only as its account type.
        return transactions.Select(t => new TransactionResponse(t.Id, t.Type, t.Reference, t.Actor, t.CreatedAt,
            lines.Where(l => l.TransactionId == t.Id).Select(l => new TransactionLine(l.OrganizationId == Guid.Empty ? $"platform:{l.Type}" : l.Type, l.AmountMicros)).ToList())).ToList();
    }
}
