namespace Sluice.Tests.TestSupport;

/// <summary>
/// Tests that drive real server processes under load (SIGKILL mid-load, database outages, floods of large bodies) take
/// turns: each one's timing assumptions (lease renewals, start-up within a minute) hold on a two-core machine only when
/// two of them are not saturating it at once. They still run beside the lighter tests.
/// </summary>
[CollectionDefinition(Name)]
public sealed class RealProcessLoad
{
    public const string Name = "Real server processes under load";
}
