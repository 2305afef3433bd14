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
        services.AddScoped<TopUpService>();
        services.AddSingleton<IPaymentProvider, StripePaymentProvider>();
        services.AddScoped<UsageReport>();
        services.AddScoped<UsageInsights>();
        services.AddScoped<Statements>();
        services.AddScoped<LowBalanceAlerts>();
        services.AddHttpClient("webhooks", client => client.Timeout = TimeSpan.FromSeconds(10))
            .ConfigurePrimaryHttpMessageHandler(provider => WebhookDelivery.CreateHandler(
                WebhookDelivery.AllowedNetworks(provider.GetRequiredService<Microsoft.Extensions.Options.IOptions<BillingOptions>>().Value)));
        services.AddOptions<StripeOptions>().BindConfiguration(StripeOptions.Section);
        services.AddHttpClient("stripe", client => client.Timeout = TimeSpan.FromSeconds(30));
        return services;
    }

    public static IServiceCollection AddBilling(this IServiceCollection services)
    {
        services.AddBillingCore();
        services.AddSingleton<SpendJournal>();
        services.AddSingleton<SpendGuard>();
        services.AddHostedService<SpendSettler>();
        services.AddHostedService<LowBalanceAlertJob>();
        return services;
    }
}
