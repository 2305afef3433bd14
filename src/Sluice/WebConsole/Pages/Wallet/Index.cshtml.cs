using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Sluice.Billing;
using Sluice.Hosting;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages.Wallet;

/// <summary>
/// The organization's wallet: balance, card top-up through the payment processor's hosted checkout, redemption codes,
/// the ledger (paged, newest first), monthly statements to download, and the low-balance alert.
/// </summary>
[OrgPermission(OrgAccess.BillingRead)]
public sealed class WalletModel(WalletService wallets, Statements statements, IPaymentProvider payments, IOptions<BillingOptions> billing, TimeProvider time) : OrgPage
{
    public const int PageSize = 20;

    public override string Title => "Wallet";

    public string Currency => billing.Value.Currency;

    public long BalanceMicros { get; private set; }

    public long HeldMicros { get; private set; }

    public WalletEntryPage Ledger { get; private set; } = new([], 1, PageSize, false);

    public IReadOnlyList<string> Months { get; private set; } = [];

    public bool CardTopUps => payments.IsConfigured;

    public bool CanChange => Can(OrgAccess.BillingWrite);

    /// <summary>The alert's signing secret, only in the response to the save that created it.</summary>
    public string? NewSigningSecret { get; private set; }

    public bool AlertOn { get; private set; }

    // "page" is Razor Pages' own route value, so the ledger's page is "p".
    [BindProperty(SupportsGet = true, Name = "p")]
    public int LedgerPage { get; set; } = 1;

    [BindProperty(SupportsGet = true, Name = "done")]
    public string? Done { get; set; }

    [BindProperty]
    public string? Amount { get; set; }

    [BindProperty]
    public string? Code { get; set; }

    [BindProperty]
    public string? Threshold { get; set; }

    [BindProperty]
    public string? WebhookUrl { get; set; }

    public async Task OnGetAsync()
    {
        Notice = Done switch
        {
            "paid" => "Thank you: your payment is being confirmed. The credit appears here once the payment processor confirms it.",
            "cancelled" => "The top-up was cancelled; nothing was charged.",
            "alert" => "Low-balance alert saved.",
            _ => null,
        };
        await LoadAsync(fillAlert: true);
    }

    public async Task<IActionResult> OnPostTopUpAsync([FromServices] TopUpService topUps)
    {
        if (!CanChange)
        {
            return Denied();
        }

        var micros = ParseMoney(Amount, nameof(Amount));
        CheckoutResponse? checkout = null;
        var wallet = $"{Request.Scheme}://{Request.Host}{OrgPath("/wallet")}";
        try
        {
            if (micros is not null && await TryAsync(async () => checkout = await topUps.CheckoutAsync(OrgId, new CheckoutRequest(micros), HttpContext.RequestAborted,
                    new CheckoutReturn(wallet + "?done=paid", wallet + "?done=cancelled"))))
            {
                // 303: the browser follows with a GET to the processor's hosted page.
                Response.Headers.Location = checkout!.Url;
                return StatusCode(StatusCodes.Status303SeeOther);
            }
        }
        catch (ApiProblemException problem) when (problem.Status == StatusCodes.Status502BadGateway)
        {
            ModelState.AddModelError(string.Empty, "The payment processor did not answer; nothing was charged. Try again in a minute.");
        }

        Move("amountMicros", nameof(Amount));
        await LoadAsync(fillAlert: true);
        return Page();
    }

    public async Task<IActionResult> OnPostRedeemAsync([FromServices] TopUpService topUps)
    {
        if (!CanChange)
        {
            return Denied();
        }

        long credited = 0;
        if (await TryAsync(async () => credited = await topUps.RedeemAsync(OrgId, new RedeemRequest(Code), HttpContext.RequestAborted)))
        {
            Notice = $"Code redeemed: {ConsoleFormat.Money(credited, Currency)} added to the wallet.";
            Code = null;
            ModelState.Clear();
        }

        await LoadAsync(fillAlert: true);
        return Page();
    }

    public async Task<IActionResult> OnPostAlertAsync([FromServices] LowBalanceAlerts alerts)
    {
        if (!CanChange)
        {
            return Denied();
        }

        var threshold = string.IsNullOrWhiteSpace(Threshold) ? null : ParseMoney(Threshold, nameof(Threshold), allowNegative: true);
        if (threshold <= 0)
        {
            ModelState.AddModelError(nameof(Threshold), $"Must be a positive amount in {Currency}; leave both fields empty to turn the alert off.");
        }

        var url = string.IsNullOrWhiteSpace(WebhookUrl) ? null : WebhookUrl.Trim();
        LowBalanceAlertResponse? saved = null;
        if (ModelState.IsValid && await TryAsync(async () => saved = await alerts.ConfigureAsync(OrgId, new LowBalanceAlertRequest(threshold, url), HttpContext.RequestAborted)))
        {
            if (saved!.SigningSecret is null)
            {
                return Redirect(OrgPath("/wallet?done=alert"));
            }

            // A new signing secret is shown once, in this response, never in a URL.
            NewSigningSecret = saved.SigningSecret;
            Notice = "Low-balance alert saved.";
            await LoadAsync(fillAlert: true);
            return Page();
        }

        Move("thresholdMicros", nameof(Threshold));
        Move("url", nameof(WebhookUrl));
        await LoadAsync(fillAlert: false);
        return Page();
    }

    /// <summary>A month's statement as a download (CSV or the printable HTML), with the session cookie.</summary>
    public async Task<IActionResult> OnGetStatementAsync(string? month, string? format)
    {
        if (month is null || format is not ("csv" or "html"))
        {
            return Missing();
        }

        Statement statement;
        try
        {
            statement = await statements.MonthAsync(OrgId, month, HttpContext.RequestAborted);
        }
        catch (ApiProblemException problem) when (problem.Status == StatusCodes.Status400BadRequest)
        {
            return Missing();
        }

        var (body, type) = format == "csv"
            ? (Statements.Csv(statement), "text/csv; charset=utf-8")
            : (Statements.Html(statement), "text/html; charset=utf-8");
        return File(Encoding.UTF8.GetBytes(body), type, $"statement-{statement.Month}.{format}");
    }

    public string LedgerLink(int page) => OrgPath(page <= 1 ? "/wallet#ledger" : $"/wallet?p={page}#ledger");

    public string StatementLink(string month, string format) => OrgPath($"/wallet?handler=Statement&month={month}&format={format}");

    private async Task LoadAsync(bool fillAlert)
    {
        var ct = HttpContext.RequestAborted;
        var wallet = await wallets.WalletAsync(OrgId, null, 1, ct);
        BalanceMicros = wallet.BalanceMicros;
        HeldMicros = wallet.HeldMicros;
        Ledger = await wallets.EntriesAsync(OrgId, LedgerPage, PageSize, ct);
        Months = await statements.MonthsAsync(OrgId, time.GetUtcNow(), ct);
        var alert = await Db.Organizations.AsNoTracking().Where(o => o.Id == OrgId)
            .Select(o => new { o.LowBalanceThresholdMicros, o.LowBalanceWebhookUrl }).SingleAsync(ct);
        AlertOn = alert.LowBalanceThresholdMicros is not null;
        if (fillAlert)
        {
            Threshold = alert.LowBalanceThresholdMicros is { } t ? (t / 1_000_000m).ToString("0.00####", CultureInfo.InvariantCulture) : null;
            WebhookUrl = alert.LowBalanceWebhookUrl;
            ModelState.Remove(nameof(Threshold));
            ModelState.Remove(nameof(WebhookUrl));
        }
    }

    /// <summary>An amount typed in the currency ("25", "25.50") as micro-units; null with a field error when it is not one.</summary>
    private decimal? ParseMoney(string? text, string field, bool allowNegative = false)
    {
        var styles = NumberStyles.AllowDecimalPoint | (allowNegative ? NumberStyles.AllowLeadingSign : NumberStyles.None) | NumberStyles.AllowLeadingWhite | NumberStyles.AllowTrailingWhite;
        if (string.IsNullOrWhiteSpace(text) || !decimal.TryParse(text, styles, CultureInfo.InvariantCulture, out var amount) || Math.Abs(amount) > 1_000_000_000m)
        {
            ModelState.AddModelError(field, $"Enter an amount in {Currency}, such as 25.00.");
            return null;
        }

        return amount * 1_000_000m;
    }

    /// <summary>Puts a service's errors for an API field under the form field that holds it.</summary>
    private void Move(string apiField, string property)
    {
        if (ModelState.TryGetValue(apiField, out var entry) && entry.Errors.Count > 0)
        {
            foreach (var message in entry.Errors.Select(e => e.ErrorMessage).ToList())
            {
                ModelState.AddModelError(property, $"{message[..1].ToUpperInvariant()}{message[1..]}.");
            }

            ModelState.Remove(apiField);
        }
    }
}
