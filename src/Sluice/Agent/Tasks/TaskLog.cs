using System.Text;

namespace Sluice.Agent.Tasks;

/// <summary>
/// The last lines a task printed (stdout and stderr), bounded by bytes: the oldest lines go first. It may hold content
/// (engines log prompts at debug level), so it lives only in the agent's memory: never sent to the server, never written
/// to the agent's own log, dropped with the task.
/// </summary>
public sealed class TaskLog(int capacityBytes)
{
    private readonly Lock _gate = new();
    private readonly Queue<string> _lines = new();
    private long _bytes;
    private long _dropped;

    public int CapacityBytes { get; } = capacityBytes > 0 ? capacityBytes : throw new ArgumentOutOfRangeException(nameof(capacityBytes));

    /// <summary>Bytes (UTF-16 characters counted as two) the buffer holds now; never more than <see cref="CapacityBytes"/>.</summary>
    public long Bytes
    {
        get
        {
            lock (_gate)
            {
                return _bytes;
            }
        }
    }

    /// <summary>Lines dropped to stay within the bound.</summary>
    public long Dropped
    {
        get
        {
            lock (_gate)
            {
                return _dropped;
            }
        }
    }

    public void Append(string line)
    {
        if (line.Length * 2L > CapacityBytes)
        {
            line = line[^(CapacityBytes / 2)..]; // a single line longer than the buffer keeps its end
        }

        lock (_gate)
        {
            _lines.Enqueue(line);
            _bytes += line.Length * 2L;
            while (_bytes > CapacityBytes)
            {
                _bytes -= _lines.Dequeue().Length * 2L;
                _dropped++;
            }
        }
    }

    public IReadOnlyList<string> Lines()
    {
        lock (_gate)
        {
            return [.. _lines];
        }
    }

    public string Text()
    {
        var text = new StringBuilder();
        foreach (var line in Lines())
        {
            text.Append(line).Append('\n');
        }

        return text.ToString();
    }

    public void Clear()
    {
        lock (_gate)
        {
            _lines.Clear();
            _bytes = 0;
        }
    }
}
