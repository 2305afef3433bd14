using Sluice.Hosting;

namespace Sluice.Billing;

internal static class BillingModule
{
    public static IServiceCollection AddBilling(this IServiceCollection services)
    {
        services.AddSettings<BillingOptions>(BillingOptions.Section);
        services.AddScoped<Ledger>();
        services.AddScoped<WalletService>();
        services.AddScoped<PriceBook>();
        return services;
    }
}
