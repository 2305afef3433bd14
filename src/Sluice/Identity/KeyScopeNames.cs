namespace Sluice.Identity;

/// <summary>The wire names of key scopes: <c>inference</c>, <c>batch</c>, <c>management:read</c>, <c>management:write</c>.</summary>
public static class KeyScopeNames
{
    private static readonly (string Name, KeyScopes Scope)[] Names =
    [
        ("inference", KeyScopes.Inference),
        ("batch", KeyScopes.Batch),
        ("management:read", KeyScopes.ManagementRead),
        ("management:write", KeyScopes.ManagementWrite),
    ];

    public static IReadOnlyList<string> All { get; } = Names.Select(n => n.Name).ToList();

    public static bool TryParse(IEnumerable<string> names, out KeyScopes scopes, out string? unknown)
    {
        scopes = KeyScopes.None;
        unknown = null;
        foreach (var name in names)
        {
            var match = Names.FirstOrDefault(n => string.Equals(n.Name, name, StringComparison.Ordinal));
            if (match.Name is null)
            {
                unknown = name;
                return false;
            }

            scopes |= match.Scope;
        }

        return true;
    }

    public static IReadOnlyList<string> Format(KeyScopes scopes) => Names.Where(n => scopes.HasFlag(n.Scope)).Select(n => n.Name).ToList();
}
