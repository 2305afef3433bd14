using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Identity;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Hosting;

/// <summary>Every endpoint declares who may call it; only a short, reviewed list is open to anonymous callers.</summary>
public sealed class EndpointPolicyTests
{
    private static readonly string[] AnonymousAllowed = ["/healthz", "/readyz", "/api/v1/auth/signup", "/api/v1/auth/login", "/api/v1/audit/public-key", "/api/v1/billing/stripe/webhook", "/privacy", "/privacy.json", "/api/v1/agent/join", "/api/v1/agent/heartbeat",
        // The console: its front door, sign-in, sign-up and sign-out pages, and its stylesheet and scripts.
        "/", "/signin", "/signup", "/signout", "/console-assets/{name}"];

    [Fact]
    public async Task Every_endpoint_declares_a_policy_and_only_the_reviewed_ones_allow_anonymous_callers()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        sluice.CreateClient().Dispose();
        var endpoints = sluice.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().ToList();

        Assert.True(endpoints.Count > 20, $"only {endpoints.Count} endpoints found");
        foreach (var endpoint in endpoints)
        {
            var route = "/" + (endpoint.RoutePattern.RawText ?? endpoint.DisplayName ?? "?").TrimStart('/');
            var anonymous = endpoint.Metadata.GetMetadata<IAllowAnonymous>() is not null;
            var authorized = endpoint.Metadata.GetOrderedMetadata<IAuthorizeData>().Any(a => a.Policy is not null);
            var keyOnly = endpoint.Metadata.GetMetadata<ApiKeyRequirement>() is { AnyOf: not KeyScopes.None };
            Assert.True(anonymous || authorized || keyOnly, $"{route} declares no authorization policy");
            Assert.False(keyOnly && (anonymous || authorized), $"{route} is both API-key-only and under a general policy");
            Assert.Equal(keyOnly, route.StartsWith("/v1", StringComparison.Ordinal)); // the OpenAI-compatible API, and only it, takes keys alone
            if (anonymous)
            {
                Assert.Contains(route.Length > 1 ? route.TrimEnd('/') : route, AnonymousAllowed);
            }
        }
    }
}
