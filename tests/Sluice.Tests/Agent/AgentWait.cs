using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Agent;

/// <summary>Waits for what real processes make true; generous, since task processes start slowly on a loaded machine.</summary>
internal static class AgentWait
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public static Task Until(Func<bool> condition, string what) => Eventually.TrueAsync(condition, what, Timeout);
}
