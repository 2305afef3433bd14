using System.Buffers;
using System.Text.Json;

namespace Sluice.Files;

/// <summary>
/// Splits JSONL into lines as bytes arrive (a line may span reads) and checks that each non-blank line is one JSON
/// object. Used on upload, so a batch file that is not JSONL is refused before it is stored.
/// </summary>
public sealed class JsonlScanner(int maxLineBytes)
{
    private readonly ArrayBufferWriter<byte> _line = new(4096);
    private bool _lineTooLong;
    private int _physicalLine;

    /// <summary>Non-blank lines: the requests of a batch file.</summary>
    public int Lines { get; private set; }

    /// <summary>The first line that is not a JSON object (1-based, counting blank lines), or null.</summary>
    public int? FirstInvalidLine { get; private set; }

    public void Observe(ReadOnlyMemory<byte> bytes)
    {
        var span = bytes.Span;
        while (span.Length > 0)
        {
            var newline = span.IndexOf((byte)'\n');
            var part = newline < 0 ? span : span[..newline];
            if (!_lineTooLong)
            {
                if (_line.WrittenCount + part.Length > maxLineBytes)
                {
                    _lineTooLong = true;
                    _line.ResetWrittenCount();
                }
                else
                {
                    _line.Write(part);
                }
            }

            if (newline < 0)
            {
                return;
            }

            EndLine();
            span = span[(newline + 1)..];
        }
    }

    /// <summary>Ends the last line (a file need not end with a newline).</summary>
    public void Complete()
    {
        if (_line.WrittenCount > 0 || _lineTooLong)
        {
            EndLine();
        }
    }

    private void EndLine()
    {
        _physicalLine++;
        var line = _line.WrittenSpan;
        var blank = !_lineTooLong && line.Trim(" \t\r"u8).IsEmpty;
        if (!blank)
        {
            Lines++;
            if (FirstInvalidLine is null && (_lineTooLong || !IsObject(line)))
            {
                FirstInvalidLine = _physicalLine;
            }
        }

        _line.Clear();
        _lineTooLong = false;
    }

    public static bool IsObject(ReadOnlySpan<byte> line)
    {
        try
        {
            var reader = new Utf8JsonReader(line);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            reader.Skip();
            return !reader.Read();
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
