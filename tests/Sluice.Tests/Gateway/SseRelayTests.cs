using System.IO.Pipelines;
using System.Text;
using Sluice.Gateway;

namespace Sluice.Tests.Gateway;

/// <summary>The byte-level event relay: events cut wherever the upstream's reads split them, in LF or CRLF form.</summary>
public sealed class SseRelayTests
{
    private const string Upstream =
        ": keep-alive\n\n" +
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n" +
        "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\r\n\r\n" +
        "event: note\ndata: first line\ndata: second line\n\n" +
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n" +
        "data: [DONE]\n\n" +
        "data: {\"after\":\"done\"}\n\n";

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    [InlineData(4096)]
    public async Task Events_are_relayed_whole_however_the_upstream_splits_its_bytes(int readSize)
    {
        var seen = new List<string>();
        var output = new MemoryStream();
        var writer = PipeWriter.Create(output);
        var firstWrites = 0;

        await SseRelay.RelayAsync(new TricklingStream(Encoding.UTF8.GetBytes(Upstream), readSize), writer, data =>
        {
            var text = Encoding.UTF8.GetString(data);
            seen.Add(text);
            return text == "[DONE]" ? SseRelay.Verdict.WriteAndEnd : text.Contains("\"usage\"", StringComparison.Ordinal) ? SseRelay.Verdict.Skip : SseRelay.Verdict.Write;
        }, () => firstWrites++, CancellationToken.None, CancellationToken.None);
        await writer.CompleteAsync();

        Assert.Equal(
            ["{\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}", "{\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}", "first line\nsecond line",
             "{\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}", "[DONE]"],
            seen);
        Assert.Equal(
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n" +
            "data: first line\nsecond line\n\ndata: [DONE]\n\n",
            Encoding.UTF8.GetString(output.ToArray()));
        Assert.Equal(1, firstWrites);
    }

    [Fact]
    public async Task An_unterminated_last_event_is_not_relayed_and_the_upstreams_end_ends_the_relay()
    {
        var output = new MemoryStream();
        var writer = PipeWriter.Create(output);

        await SseRelay.RelayAsync(new TricklingStream(Encoding.UTF8.GetBytes("data: whole\n\ndata: cut off"), 3), writer,
            _ => SseRelay.Verdict.Write, () => { }, CancellationToken.None, CancellationToken.None);
        await writer.CompleteAsync();

        Assert.Equal("data: whole\n\n", Encoding.UTF8.GetString(output.ToArray()));
    }

    [Fact]
    public async Task An_event_that_never_ends_is_cut_off_at_the_limit_instead_of_growing_without_bound()
    {
        var endless = new byte[SseRelay.MaxEventBytes + 1024];
        "data: "u8.CopyTo(endless);
        endless.AsSpan(6).Fill((byte)'x');
        var writer = PipeWriter.Create(new MemoryStream());

        await Assert.ThrowsAsync<IOException>(() => SseRelay.RelayAsync(new MemoryStream(endless), writer,
            _ => SseRelay.Verdict.Write, () => { }, CancellationToken.None, CancellationToken.None));
    }

    /// <summary>A stream that hands out at most a few bytes per read, as a slow network would.</summary>
    private sealed class TricklingStream(byte[] bytes, int readSize) : MemoryStream(bytes)
    {
        public override int Read(byte[] buffer, int offset, int count) => base.Read(buffer, offset, Math.Min(count, readSize));

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(buffer.Length, readSize)], cancellationToken);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            base.ReadAsync(buffer, offset, Math.Min(count, readSize), cancellationToken);
    }
}
