using System.Buffers;
using System.IO.Pipelines;

namespace Sluice.Gateway;

/// <summary>
/// Relays an OpenAI-format event stream byte for byte: events are cut from the upstream's buffer as they complete,
/// their <c>data</c> handed to a callback as bytes, and whatever arrived together is written and flushed
/// together. Nothing is decoded to strings, and a burst of chunks costs one flush, not one per chunk.
/// </summary>
internal static class SseRelay
{
    /// <summary>The largest event the relay holds while waiting for its end.</summary>
    public const int MaxEventBytes = 16 * 1024 * 1024;

    /// <summary>What to do with one event's data: write it on, skip it, or write it and end the stream.</summary>
    public enum Verdict
    {
        Write,
        Skip,
        WriteAndEnd,

        /// <summary>Write what the handler put in the relay's rewrite buffer instead of the event's data.</summary>
        WriteRewritten,
    }

    public delegate Verdict EventHandler(ReadOnlySpan<byte> data);

    /// <summary>
    /// Relays until the upstream ends, an event ends the stream, or the client has gone. A handler that changes an
    /// event writes the new data to <paramref name="rewritten"/> (emptied after each use) and answers
    /// <see cref="Verdict.WriteRewritten"/>.
    /// </summary>
    public static async Task RelayAsync(
        Stream upstream, PipeWriter client, EventHandler onEvent, Action onFirstWrite, CancellationToken upstreamToken, CancellationToken clientToken,
        ArrayBufferWriter<byte>? rewritten = null)
    {
        var reader = PipeReader.Create(upstream, new StreamPipeReaderOptions(bufferSize: 16 * 1024, leaveOpen: true));
        var first = true;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(upstreamToken);
                var buffer = result.Buffer;
                var pending = false;
                var ended = false;
                while (!ended && TryCutEvent(ref buffer, out var evt))
                {
                    var data = Data(evt, out var rented);
                    try
                    {
                        if (data.IsEmpty)
                        {
                            continue; // a comment, a keep-alive, or an event without data
                        }

                        var verdict = onEvent(data);
                        if (verdict == Verdict.Skip)
                        {
                            continue;
                        }

                        if (first)
                        {
                            onFirstWrite();
                            first = false;
                        }

                        if (verdict == Verdict.WriteRewritten)
                        {
                            Write(client, rewritten!.WrittenSpan);
                            rewritten.ResetWrittenCount();
                        }
                        else
                        {
                            Write(client, data);
                        }

                        pending = true;
                        ended = verdict == Verdict.WriteAndEnd;
                    }
                    finally
                    {
                        if (rented is not null)
                        {
                            ArrayPool<byte>.Shared.Return(rented);
                        }
                    }
                }

                if (buffer.Length > MaxEventBytes)
                {
                    // An upstream that never ends its event would otherwise grow this buffer without bound.
                    throw new IOException("The provider sent an event larger than the relay accepts.");
                }

                reader.AdvanceTo(buffer.Start, buffer.End);
                if (pending && await client.FlushAsync(clientToken) is { IsCompleted: true } or { IsCanceled: true })
                {
                    return;
                }

                if (ended || result.IsCompleted)
                {
                    return;
                }
            }
        }
        finally
        {
            await reader.CompleteAsync();
        }
    }

    /// <summary>The bytes <see cref="Write"/> sends for this data.</summary>
    public static int EventLength(ReadOnlySpan<byte> data) => 6 + data.Length + 2;

    /// <summary>Writes the data as one event, <c>data: …\n\n</c>.</summary>
    public static void Write(PipeWriter client, ReadOnlySpan<byte> data)
    {
        var length = EventLength(data);
        var span = client.GetSpan(length);
        "data: "u8.CopyTo(span);
        data.CopyTo(span[6..]);
        "\n\n"u8.CopyTo(span[(6 + data.Length)..]);
        client.Advance(length);
    }

    /// <summary>Cuts the next complete event (ending in a blank line, LF or CRLF) off the front of the buffer.</summary>
    private static bool TryCutEvent(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> evt)
    {
        var reader = new SequenceReader<byte>(buffer);
        while (reader.TryAdvanceTo((byte)'\n', advancePastDelimiter: true))
        {
            if (reader.TryPeek(out var next) && (next == (byte)'\n' || (next == (byte)'\r' && reader.Remaining >= 2 && Peek(reader, 1) == (byte)'\n')))
            {
                reader.Advance(next == (byte)'\n' ? 1 : 2);
                evt = buffer.Slice(0, reader.Position);
                buffer = buffer.Slice(reader.Position);
                return true;
            }
        }

        evt = default;
        return false;
    }

    private static byte Peek(SequenceReader<byte> reader, int offset)
    {
        reader.Advance(offset);
        return reader.TryPeek(out var value) ? value : (byte)0;
    }

    /// <summary>
    /// The event's data: the text after <c>data:</c> (and one space), lines joined by LF. One data line in one segment,
    /// the usual case, is a slice of the buffer; anything else is gathered into a pooled array the caller returns.
    /// </summary>
    private static ReadOnlySpan<byte> Data(ReadOnlySequence<byte> evt, out byte[]? rented)
    {
        rented = null;
        var lines = new SequenceReader<byte>(evt);
        var dataLines = 0;
        ReadOnlySpan<byte> single = default;
        var singleInOneSegment = true;
        while (lines.TryReadTo(out ReadOnlySequence<byte> line, (byte)'\n'))
        {
            if (!line.IsEmpty && line.Slice(line.Length - 1).FirstSpan[0] == (byte)'\r')
            {
                line = line.Slice(0, line.Length - 1);
            }

            if (!StartsWithData(line))
            {
                continue;
            }

            dataLines++;
            if (dataLines == 1 && line.IsSingleSegment)
            {
                single = Payload(line.FirstSpan);
            }
            else
            {
                singleInOneSegment = false;
            }
        }

        if (dataLines <= 1 && singleInOneSegment)
        {
            return single;
        }

        // Several data lines, or one split across segments: join them into one array.
        rented = ArrayPool<byte>.Shared.Rent((int)evt.Length);
        var length = 0;
        lines = new SequenceReader<byte>(evt);
        var firstLine = true;
        while (lines.TryReadTo(out ReadOnlySequence<byte> line, (byte)'\n'))
        {
            var bytes = line.ToArray().AsSpan();
            if (bytes.Length > 0 && bytes[^1] == (byte)'\r')
            {
                bytes = bytes[..^1];
            }

            if (!bytes.StartsWith("data:"u8))
            {
                continue;
            }

            if (!firstLine)
            {
                rented[length++] = (byte)'\n';
            }

            var payload = Payload(bytes);
            payload.CopyTo(rented.AsSpan(length));
            length += payload.Length;
            firstLine = false;
        }

        return rented.AsSpan(0, length);
    }

    private static bool StartsWithData(ReadOnlySequence<byte> line)
    {
        if (line.Length < 5)
        {
            return false;
        }

        Span<byte> head = stackalloc byte[5];
        line.Slice(0, 5).CopyTo(head);
        return head.SequenceEqual("data:"u8);
    }

    private static ReadOnlySpan<byte> Payload(ReadOnlySpan<byte> line) =>
        line.Length > 5 && line[5] == (byte)' ' ? line[6..] : line[5..];
}
