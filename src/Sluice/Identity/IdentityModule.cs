using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Sluice.Hosting;

namespace Sluice.Identity;

internal static class IdentityModule
{
    /// <summary>Identity services without the web parts: what the CLI needs to manage orgs and keys on the server.</summary>
    public static IServiceCollection AddSluiceIdentityCore(this IServiceCollection services)
    {
        services.AddSettings<IdentityOptions>(IdentityOptions.Section);
        services.AddSingleton<KnownKeyPrefixes>();
        services.AddSingleton<ApiKeyVerifier>();
        services.AddScoped<AccountService>();
        services.AddScoped<OrganizationService>();
        services.AddScoped<ApiKeyService>();
        services.AddScoped<OperatorService>();
        services.AddSingleton<LoginThrottle>();
        return services;
    }

    public static IServiceCollection AddSluiceIdentity(this IServiceCollection services)
    {
        services.AddSluiceIdentityCore();
        services.AddSingleton<IOneTimeCredentialWriter, ConsoleOneTimeCredentialWriter>();
        services.AddHostedService<OperatorBootstrap>();
        services.AddHostedService<ApiKeyChangeWatcher>();
        services.AddSingleton<ApiKeyUsageRecorder>();
        services.AddHostedService(provider => provider.GetRequiredService<ApiKeyUsageRecorder>());

        services.AddAuthentication(AuthenticationSchemes.Default)
            .AddPolicyScheme(AuthenticationSchemes.Default, "Session cookie or API key", scheme =>
                // The agent's calls carry a machine credential, checked by the compute plane itself, never as an API key.
                scheme.ForwardDefaultSelector = http => AuthenticationSchemes.CarriesApiKey(http.Request)
                    && !http.Request.Path.StartsWithSegments("/api/v1/agent", StringComparison.OrdinalIgnoreCase)
                    ? AuthenticationSchemes.ApiKey
                    : AuthenticationSchemes.Session)
            .AddScheme<AuthenticationSchemeOptions, SessionAuthenticationHandler>(AuthenticationSchemes.Session, null)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(AuthenticationSchemes.ApiKey, null);

        services.AddScoped<IAuthorizationHandler, OrgAccessHandler>();
        services.AddSingleton<Microsoft.AspNetCore.Authorization.IAuthorizationMiddlewareResultHandler, ProblemAuthorizationResultHandler>();
        var authorization = services.AddAuthorizationBuilder()
            // Anything mapped without a policy is closed, not open; Docs/EndpointPolicyTests checks each endpoint declares one.
            .SetFallbackPolicy(new AuthorizationPolicyBuilder().RequireAuthenticatedUser().Build())
            .AddPolicy(Policies.Authenticated, p => p.RequireAuthenticatedUser())
            .AddPolicy(Policies.User, p => p.RequireClaim(Caller.SessionClaim))
            .AddPolicy(Policies.Operator, p => p.RequireClaim(Caller.SessionClaim).RequireClaim(Caller.OperatorClaim, "true"));
        foreach (var permission in Enum.GetValues<OrgAccess>())
        {
            authorization.AddPolicy(Policies.Org(permission), p => p.RequireAuthenticatedUser().AddRequirements(new OrgAccessRequirement(permission)));
        }

        return services;
    }
}
