using System.Runtime.CompilerServices;
using System.Text;

namespace Sluice.Gateway;

/// <summary>Reads server-sent events (event name and data) from a stream as they arrive.</summary>
internal static class Sse
{
    public static async IAsyncEnumerable<(string? Event, string Data)> ReadAsync(Stream stream, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: false, bufferSize: 4096, leaveOpen: true);
        string? eventType = null;
        var data = new StringBuilder();
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.Length == 0)
            {
                if (data.Length > 0)
                {
                    yield return (eventType, data.ToString());
                }

                eventType = null;
                data.Clear();
                continue;
            }

            if (line.StartsWith("data:", StringComparison.Ordinal))
            {
                if (data.Length > 0)
                {
                    data.Append('\n');
                }

                data.Append(line.AsSpan(line.Length > 5 && line[5] == ' ' ? 6 : 5));
            }
            else if (line.StartsWith("event:", StringComparison.Ordinal))
            {
                eventType = line[6..].Trim();
            }
        }

        if (data.Length > 0)
        {
            yield return (eventType, data.ToString());
        }
    }
}
