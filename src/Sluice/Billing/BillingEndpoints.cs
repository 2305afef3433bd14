using Sluice.Identity;

namespace Sluice.Billing;

internal static class BillingEndpoints
{
    public static IEndpointRouteBuilder MapBilling(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/api/v1/orgs/{orgId:guid}/wallet", (Guid orgId, DateTimeOffset? before, int? limit, WalletService wallets, CancellationToken ct) =>
            wallets.WalletAsync(orgId, before, limit, ct)).WithTags("billing").RequireAuthorization(Policies.Org(OrgAccess.BillingRead));
        endpoints.MapPost("/api/v1/admin/orgs/{orgId:guid}/wallet/credits", async (Guid orgId, CreditRequest request, WalletService wallets, CancellationToken ct) =>
            TypedResults.Created($"/api/v1/orgs/{orgId}/wallet", await wallets.CreditAsync(orgId, request, ct)))
            .WithTags("billing").RequireAuthorization(Policies.Operator);

        var prices = endpoints.MapGroup("/api/v1/catalog").WithTags("billing").RequireAuthorization(Policies.Operator);
        prices.MapGet("/prices", (Guid? routeId, PriceBook book, CancellationToken ct) => book.ListAsync(routeId, ct));
        prices.MapPost("/routes/{routeId:guid}/prices", async (Guid routeId, SetPriceRequest request, PriceBook book, CancellationToken ct) =>
            TypedResults.Created($"/api/v1/catalog/prices?routeId={routeId}", await book.SetAsync(routeId, request, ct)));
        return endpoints;
    }
}
