using System.CommandLine;
using System.Globalization;
using Sluice.Billing;

namespace Sluice.Cli;

/// <summary><c>sluice wallet credit|show</c>, <c>sluice prices set|list</c> and <c>sluice gpu-prices set|list</c>.</summary>
internal static class BillingCommands
{
    public static Command Wallet()
    {
        var command = new Command("wallet", "Credit and inspect organizations' prepaid wallets.");

        var org = new Option<Guid>("--org") { Description = "The organization's id.", Required = true };
        var amount = new Option<decimal>("--amount") { Description = "Amount in currency units, e.g. 25.50 (stored as integer micro-units).", Required = true };
        var currency = new Option<string?>("--currency") { Description = "Must match Billing:Currency (default USD)." };
        var reason = new Option<string>("--reason") { Description = "Why the credit is given (kept on the ledger).", Required = true };
        var promotional = new Option<bool>("--promotional") { Description = "Promotional credit (booked against the promotions account) rather than a paid credit." };
        var key = new Option<string?>("--idempotency-key") { Description = "Makes a retried command credit once." };
        var credit = new Command("credit", "Credit a wallet (a balanced ledger transaction, audited).") { org, amount, currency, reason, promotional, key };
        credit.RunsOnHost(async (parse, services, ct) =>
        {
            var micros = parse.GetValue(amount) * 1_000_000m;
            var response = await services.GetRequiredService<WalletService>().CreditAsync(parse.GetValue(org),
                new CreditRequest(micros, parse.GetValue(currency), parse.GetValue(reason), parse.GetValue(key), parse.GetValue(promotional)), ct);
            await Console.Out.WriteLineAsync($"Credited {Money(micros)} (ledger transaction {response.Id}).");
            return ExitCodes.Success;
        });
        command.Subcommands.Add(credit);

        var showOrg = new Option<Guid>("--org") { Description = "The organization's id.", Required = true };
        var show = new Command("show", "Show a wallet's balance and latest transactions.") { showOrg };
        show.RunsOnHost(async (parse, services, ct) =>
        {
            var wallet = await services.GetRequiredService<WalletService>().WalletAsync(parse.GetValue(showOrg), null, 20, ct);
            await Console.Out.WriteLineAsync($"Balance {Money(wallet.BalanceMicros)} {wallet.Currency}, held for requests in flight {Money(wallet.HeldMicros)}.");
            foreach (var transaction in wallet.Transactions)
            {
                var own = transaction.Lines.Where(l => !l.Account.StartsWith("platform:", StringComparison.Ordinal)).Sum(l => l.AmountMicros);
                await Console.Out.WriteLineAsync($"  {transaction.CreatedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss}  {transaction.Type,-20} {Money(own),14}  {transaction.Reference}");
            }

            return ExitCodes.Success;
        });
        command.Subcommands.Add(show);
        return command;
    }

    public static Command Prices()
    {
        var command = new Command("prices", "Set and list routes' prices (versioned by effective time).");

        var route = new Option<Guid>("--route") { Description = "The route's id (see `sluice models list`).", Required = true };
        var input = new Option<decimal>("--input") { Description = "Price per million input tokens, in currency units.", Required = true };
        var output = new Option<decimal>("--output") { Description = "Price per million output tokens, in currency units.", Required = true };
        var cached = new Option<decimal?>("--cached-input") { Description = "Price per million cached input tokens (default: the input price)." };
        var fee = new Option<decimal?>("--request-fee") { Description = "A fixed fee per request, in currency units." };
        var from = new Option<DateTimeOffset?>("--effective-from") { Description = "When the price takes effect (default now; never in the past)." };
        var set = new Command("set", "Add a price version for a route (audited).") { route, input, output, cached, fee, from };
        set.RunsOnHost(async (parse, services, ct) =>
        {
            var price = await services.GetRequiredService<PriceBook>().SetAsync(parse.GetValue(route), new SetPriceRequest(
                parse.GetValue(input) * 1_000_000m, parse.GetValue(output) * 1_000_000m, parse.GetValue(cached) * 1_000_000m,
                parse.GetValue(fee) * 1_000_000m, parse.GetValue(from)), ct);
            await Console.Out.WriteLineAsync($"Route {price.RouteId}: {Money(price.InputPerMillionMicros)} in / {Money(price.OutputPerMillionMicros)} out per million tokens from {price.EffectiveFrom.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z.");
            return ExitCodes.Success;
        });
        command.Subcommands.Add(set);

        var list = new Command("list", "List every price version; * marks those in force.");
        list.RunsOnHost(async (parse, services, ct) =>
        {
            foreach (var price in await services.GetRequiredService<PriceBook>().ListAsync(null, ct))
            {
                await Console.Out.WriteLineAsync($"{(price.Current ? "*" : " ")} {price.RouteId}  in {Money(price.InputPerMillionMicros)}  out {Money(price.OutputPerMillionMicros)}  cached {Money(price.CachedInputPerMillionMicros)}  fee {Money(price.RequestFeeMicros)}  from {price.EffectiveFrom.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z");
            }

            return ExitCodes.Success;
        });
        command.Subcommands.Add(list);
        return command;
    }

    public static Command GpuPrices()
    {
        var command = new Command("gpu-prices", "Set and list prices per GPU-hour by GPU type, for deployments' GPU time (versioned by effective time).");

        var gpu = new Option<string>("--gpu") { Description = "The GPU model as nvidia-smi names it, e.g. \"NVIDIA L4\" (see `sluice machines list`).", Required = true };
        var perHour = new Option<decimal>("--per-hour") { Description = "Price per GPU per hour, in currency units, e.g. 0.80.", Required = true };
        var from = new Option<DateTimeOffset?>("--effective-from") { Description = "When the price takes effect (default now; never in the past)." };
        var set = new Command("set", "Add a price version for a GPU type (audited).") { gpu, perHour, from };
        set.RunsOnHost(async (parse, services, ct) =>
        {
            var price = await services.GetRequiredService<Deployments.Billing.GpuPrices>().SetAsync(
                new Deployments.Billing.SetGpuPriceRequest(parse.GetValue(gpu), parse.GetValue(perHour) * 1_000_000m, parse.GetValue(from)), ct);
            await Console.Out.WriteLineAsync($"{price.GpuType}: {Money(price.PerGpuHourMicros)} per GPU-hour from {price.EffectiveFrom.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z.");
            return ExitCodes.Success;
        });
        command.Subcommands.Add(set);

        var list = new Command("list", "List every GPU price version; * marks those in force.");
        list.RunsOnHost(async (parse, services, ct) =>
        {
            foreach (var price in await services.GetRequiredService<Deployments.Billing.GpuPrices>().ListAsync(null, ct))
            {
                await Console.Out.WriteLineAsync($"{(price.Current ? "*" : " ")} {price.GpuType,-28} {Money(price.PerGpuHourMicros),12} per GPU-hour  from {price.EffectiveFrom.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z");
            }

            return ExitCodes.Success;
        });
        command.Subcommands.Add(list);
        return command;
    }

    private static string Money(decimal micros) => (micros / 1_000_000m).ToString("0.00####", CultureInfo.InvariantCulture);
}
