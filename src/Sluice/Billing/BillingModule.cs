using Sluice.Hosting;

namespace Sluice.Billing;

internal static class BillingModule
{
    /// <summary>The ledger, wallets and prices: what the admin commands need.</summary>
    public static IServiceCollection AddBillingCore(this IServiceCollection services)
    {
        services.AddSettings<BillingOptions>(BillingOptions.Section);
        services.AddScoped<Ledger>();
        services.AddScoped<WalletService>();
        services.AddScoped<PriceBook>();
        return services;
    }

    public static IServiceCollection AddBilling(this IServiceCollection services)
    {
        services.AddBillingCore();
        services.AddSingleton<SpendGuard>();
        services.AddHostedService<SpendSettler>();
        return services;
    }
}
