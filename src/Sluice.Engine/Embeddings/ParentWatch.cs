namespace Sluice.Engine.Embeddings;

/// <summary>
/// <c>--exit-with-parent</c>: the parent holds the write end of this process's stdin and never writes to it, so stdin
/// reaches end-of-file exactly when the parent closes it or dies, SIGKILL included (the kernel closes a dead process's
/// descriptors). Then the engine shuts down, and no orphan outlives the server that started it.
/// </summary>
internal static class ParentWatch
{
    public static void Start(Action parentGone)
    {
        var thread = new Thread(() =>
        {
            try
            {
                using var stdin = Console.OpenStandardInput();
                var buffer = new byte[256];
                while (stdin.Read(buffer) > 0)
                {
                    // Anything the parent writes is ignored: only the end of the stream means something.
                }
            }
            catch (IOException)
            {
                // A broken stdin is a gone parent too.
            }

            parentGone();
        })
        {
            IsBackground = true,
            Name = "sluice engine: parent watch",
        };
        thread.Start();
    }
}
