namespace Sluice.Tests.TestSupport;

/// <summary>
/// Bounded waits for something another thread or process makes true: poll the condition, fail the test with what was
/// awaited if it is still false at the deadline. The poll interval is the only sleep; the test asserts the condition.
/// </summary>
public static class Eventually
{
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    public static Task TrueAsync(Func<bool> condition, string what, TimeSpan? timeout = null) =>
        TrueAsync(() => Task.FromResult(condition()), what, timeout);

    public static async Task TrueAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? DefaultTimeout);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out after {(timeout ?? DefaultTimeout).TotalSeconds:0.#} s waiting for {what}");
            }

            await Task.Delay(20);
        }
    }
}
