using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;

namespace Sluice.Files;

/// <summary>Reads JSONL from a stream as it is decrypted: every non-blank line, with its 1-based line number and its index among requests.</summary>
public static class JsonlLines
{
    public readonly record struct Line(int Number, int Index, byte[] Bytes);

    public static async IAsyncEnumerable<Line> ReadAsync(Stream stream, int maxLineBytes, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, leaveOpen: true));
        var number = 0;
        var index = 0;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(cancellationToken);
                var buffer = result.Buffer;
                while (buffer.PositionOf((byte)'\n') is { } newline)
                {
                    var line = buffer.Slice(0, newline);
                    buffer = buffer.Slice(buffer.GetPosition(1, newline));
                    number++;
                    if (Take(line, maxLineBytes) is { } bytes)
                    {
                        yield return new Line(number, index++, bytes);
                    }
                }

                if (result.IsCompleted)
                {
                    if (buffer.Length > 0)
                    {
                        number++;
                        if (Take(buffer, maxLineBytes) is { } bytes)
                        {
                            yield return new Line(number, index++, bytes);
                        }
                    }

                    break;
                }

                if (buffer.Length > maxLineBytes)
                {
                    throw new InvalidDataException($"line {number + 1} is longer than {maxLineBytes} bytes");
                }

                reader.AdvanceTo(buffer.Start, buffer.End);
            }
        }
        finally
        {
            await reader.CompleteAsync();
        }
    }

    private static byte[]? Take(ReadOnlySequence<byte> line, int maxLineBytes)
    {
        if (line.Length > maxLineBytes)
        {
            throw new InvalidDataException($"a line is longer than {maxLineBytes} bytes");
        }

        var bytes = line.ToArray();
        return bytes.AsSpan().Trim(" \t\r"u8).IsEmpty ? null : bytes;
    }
}
