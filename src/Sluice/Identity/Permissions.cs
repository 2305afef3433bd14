namespace Sluice.Identity;

/// <summary>What can be done inside one organization. Roles and key scopes each grant a set.</summary>
public enum OrgAccess
{
    OrgRead,
    OrgWrite,
    MembersRead,
    MembersWrite,
    KeysRead,
    KeysWrite,
    BillingRead,
    BillingWrite,
}

public static class Permissions
{
    private static readonly OrgAccess[] ReadOnly = [OrgAccess.OrgRead, OrgAccess.MembersRead, OrgAccess.KeysRead, OrgAccess.BillingRead];

    /// <summary>
    /// owner: everything. admin: everything, but owners are managed only by owners. member: read the org and its
    /// members, use and create keys (and revoke or rotate the ones they created). billing: the org, members and billing.
    /// viewer: read the org, its members and key metadata.
    /// </summary>
    public static bool Grants(OrgRole role, OrgAccess permission) => role switch
    {
        OrgRole.Owner or OrgRole.Admin => true,
        OrgRole.Member => permission is OrgAccess.OrgRead or OrgAccess.MembersRead or OrgAccess.KeysRead or OrgAccess.KeysWrite,
        OrgRole.Billing => permission is OrgAccess.OrgRead or OrgAccess.MembersRead or OrgAccess.BillingRead or OrgAccess.BillingWrite,
        OrgRole.Viewer => permission is OrgAccess.OrgRead or OrgAccess.MembersRead or OrgAccess.KeysRead,
        _ => false,
    };

    /// <summary>A key with <c>management:read</c> reads its org; <c>management:write</c> also changes it.</summary>
    public static bool Grants(KeyScopes scopes, OrgAccess permission) =>
        scopes.HasFlag(KeyScopes.ManagementWrite) || (scopes.HasFlag(KeyScopes.ManagementRead) && ReadOnly.Contains(permission));

    /// <summary>
    /// The scopes a person in <paramref name="role"/> may put on a key they create: <c>management:write</c> only for
    /// owners and admins (it grants every permission), the others for every role that may create keys. A key is
    /// also checked at each use against its creator's current role (<see cref="OrgAccessHandler"/>), so this is the
    /// first of two fences, not the only one.
    /// </summary>
    public static KeyScopes ScopesAllowed(OrgRole role) => role switch
    {
        OrgRole.Owner or OrgRole.Admin => KeyScopes.Inference | KeyScopes.Batch | KeyScopes.ManagementRead | KeyScopes.ManagementWrite,
        _ when Grants(role, OrgAccess.KeysWrite) => KeyScopes.Inference | KeyScopes.Batch | KeyScopes.ManagementRead,
        _ => KeyScopes.None,
    };

    public static string PolicyName(OrgAccess permission) => $"org:{permission}";
}
