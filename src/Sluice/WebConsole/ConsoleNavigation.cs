using Sluice.Identity;

namespace Sluice.WebConsole;

/// <summary>
/// Every page in the console's menu, in order, with what it takes to see it. A page a person may not use is not shown
/// to them (and its own authorization refuses it by URL). Add a page here when you add it to the console.
/// </summary>
public static class ConsoleNavigation
{
    /// <summary>Pages of the current organization; <see cref="NavItem.Path"/> is relative to <c>/orgs/{orgId}</c>.</summary>
    public static readonly IReadOnlyList<NavItem> Organization =
    [
        new("Overview", "", OrgAccess.OrgRead),
        new("Playground", "/playground", OrgAccess.KeysWrite),
        new("API keys", "/keys", OrgAccess.KeysRead),
        new("Usage", "/usage", OrgAccess.OrgRead),
        new("Wallet", "/wallet", OrgAccess.BillingRead),
        new("Files", "/files", OrgAccess.KeysWrite),
        new("Batches", "/batches", OrgAccess.KeysWrite),
        new("Deployments", "/deployments", OrgAccess.OrgRead),
        new("Machines", "/machines", OrgAccess.OrgWrite),
        new("Members", "/members", OrgAccess.MembersRead),
        new("Audit log", "/audit", OrgAccess.OrgWrite), // owners and admins only, as GET /api/v1/audit/entries
        new("Settings", "/settings", OrgAccess.OrgWrite),
    ];

    /// <summary>The person's own pages.</summary>
    public static readonly IReadOnlyList<NavItem> Account =
    [
        new("Account", "/account", null),
        new("Privacy center", "/account/privacy", null),
        new("Invitations", "/invitations", null),
    ];

    /// <summary>Platform operators' pages.</summary>
    public static readonly IReadOnlyList<NavItem> Operator =
    [
        new("Providers", "/admin/providers", null),
        new("Models and prices", "/admin/models", null),
        new("Organizations", "/admin/orgs", null),
        new("Machines", "/admin/machines", null),
        new("Privacy requests", "/admin/privacy", null),
        new("Legal holds", "/admin/legal-holds", null),
        new("Staff access", "/admin/staff-access", null),
    ];
}

/// <summary>A menu entry: its label, its path and the organization permission it needs (none for account and operator pages).</summary>
public sealed record NavItem(string Label, string Path, OrgAccess? Permission);
