using Sluice.Hosting;
using Sluice.Identity;

namespace Sluice.Billing;

internal static class BillingEndpoints
{
    public static IEndpointRouteBuilder MapBilling(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/api/v1/orgs/{orgId:guid}/wallet", (Guid orgId, DateTimeOffset? before, int? limit, WalletService wallets, CancellationToken ct) =>
            wallets.WalletAsync(orgId, before, limit, ct)).WithTags("billing").RequireAuthorization(Policies.Org(OrgAccess.BillingRead));
        // Short forms: the organization from ?orgId=, or from the API key making the call.
        endpoints.MapGet("/api/v1/wallet", (HttpContext http, DateTimeOffset? before, int? limit, WalletService wallets, CancellationToken ct) =>
            wallets.WalletAsync(OrgOf(http), before, limit, ct)).WithTags("billing").RequireAuthorization(Policies.Org(OrgAccess.BillingRead));
        endpoints.MapGet("/api/v1/usage", (HttpContext http, DateTimeOffset? from, DateTimeOffset? to, string? groupBy, UsageReport report, CancellationToken ct) =>
            report.ReportAsync(OrgOf(http), from, to, groupBy, ct)).WithTags("billing").RequireAuthorization(Policies.Org(OrgAccess.BillingRead));
        endpoints.MapGet("/api/v1/orgs/{orgId:guid}/usage", (Guid orgId, DateTimeOffset? from, DateTimeOffset? to, string? groupBy, UsageReport report, CancellationToken ct) =>
            report.ReportAsync(orgId, from, to, groupBy, ct)).WithTags("billing").RequireAuthorization(Policies.Org(OrgAccess.BillingRead));
        endpoints.MapGet("/api/v1/orgs/{orgId:guid}/statements/{month}", async (Guid orgId, string month, string? format, Statements statements, CancellationToken ct) =>
        {
            var statement = await statements.MonthAsync(orgId, month, ct);
            return format switch
            {
                null or "json" => Results.Json(statement),
                "csv" => Results.Text(Statements.Csv(statement), "text/csv; charset=utf-8"),
                "html" => Results.Text(Statements.Html(statement), "text/html; charset=utf-8"),
                _ => throw ApiProblem.Invalid("format", "must be json, csv or html"),
            };
        }).WithTags("billing").RequireAuthorization(Policies.Org(OrgAccess.BillingRead));
        endpoints.MapPut("/api/v1/orgs/{orgId:guid}/wallet/alert", (Guid orgId, LowBalanceAlertRequest request, LowBalanceAlerts alerts, CancellationToken ct) =>
            alerts.ConfigureAsync(orgId, request, ct)).WithTags("billing").RequireAuthorization(Policies.Org(OrgAccess.BillingWrite));
        endpoints.MapPost("/api/v1/admin/orgs/{orgId:guid}/wallet/credits", async (Guid orgId, CreditRequest request, WalletService wallets, CancellationToken ct) =>
            TypedResults.Created($"/api/v1/orgs/{orgId}/wallet", await wallets.CreditAsync(orgId, request, ct)))
            .WithTags("billing").RequireAuthorization(Policies.Operator);

        endpoints.MapPost("/api/v1/orgs/{orgId:guid}/wallet/checkout", (Guid orgId, CheckoutRequest request, TopUpService topUps, CancellationToken ct) =>
            topUps.CheckoutAsync(orgId, request, ct)).WithTags("billing").RequireAuthorization(Policies.Org(OrgAccess.BillingWrite));
        endpoints.MapPost("/api/v1/orgs/{orgId:guid}/wallet/redeem", async (Guid orgId, RedeemRequest request, TopUpService topUps, CancellationToken ct) =>
            new { creditedMicros = await topUps.RedeemAsync(orgId, request, ct) }).WithTags("billing").RequireAuthorization(Policies.Org(OrgAccess.BillingWrite));
        endpoints.MapPost("/api/v1/admin/redemption-codes", async (CreateCodesRequest request, TopUpService topUps, CancellationToken ct) =>
            TypedResults.Created("/api/v1/admin/redemption-codes", new { codes = await topUps.CreateCodesAsync(request, ct) }))
            .WithTags("billing").RequireAuthorization(Policies.Operator);

        // Stripe calls this; it proves itself with the Stripe-Signature header, not a session or key.
        endpoints.MapPost("/api/v1/billing/stripe/webhook", async (HttpRequest http, TopUpService topUps, CancellationToken ct) =>
        {
            using var reader = new StreamReader(http.Body);
            var payload = await reader.ReadToEndAsync(ct);
            return await topUps.HandlePaymentNotificationAsync(payload, http.Headers["Stripe-Signature"], ct)
                ? Results.Ok()
                : Results.Problem(statusCode: 400, title: "Invalid signature.", detail: "The Stripe-Signature header does not verify, or the event is too old.");
        }).WithTags("billing").AllowAnonymous().WithMetadata(new BodyLimit(256 * 1024)); // Stripe events are a few KiB

        var prices = endpoints.MapGroup("/api/v1/catalog").WithTags("billing").RequireAuthorization(Policies.Operator);
        prices.MapGet("/prices", (Guid? routeId, PriceBook book, CancellationToken ct) => book.ListAsync(routeId, ct));
        prices.MapPost("/routes/{routeId:guid}/prices", async (Guid routeId, SetPriceRequest request, PriceBook book, CancellationToken ct) =>
            TypedResults.Created($"/api/v1/catalog/prices?routeId={routeId}", await book.SetAsync(routeId, request, ct)));
        return endpoints;
    }

    private static Guid OrgOf(HttpContext http) =>
        OrgAccessHandler.TryGetOrganization(http, http.Caller(), out var orgId) ? orgId : throw ApiProblem.Invalid("orgId", "is required");
}
