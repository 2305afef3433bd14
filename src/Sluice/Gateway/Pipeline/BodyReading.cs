using System.Buffers;

namespace Sluice.Gateway.Pipeline;

internal static class BodyReading
{
    /// <summary>
    /// Reads a whole body into one array of exactly its size. A declared length is read straight into its array; an
    /// undeclared one is gathered in pooled buffers first. (Growing a fresh 16 KiB buffer per read used to allocate and
    /// zero about 100 KiB per request.) Throws <see cref="InvalidDataException"/> past <paramref name="limit"/>.
    /// </summary>
    public static async Task<byte[]> ReadAllAsync(Stream stream, long? declaredLength, long limit, CancellationToken cancellationToken)
    {
        if (declaredLength is { } length && length <= limit)
        {
            var exact = GC.AllocateUninitializedArray<byte>((int)length);
            await stream.ReadExactlyAsync(exact, cancellationToken);
            return exact;
        }

        var rented = ArrayPool<byte>.Shared.Rent(4096);
        var count = 0;
        try
        {
            while (true)
            {
                if (count == rented.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(rented.Length * 2);
                    rented.AsSpan(0, count).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(rented);
                    rented = larger;
                }

                var read = await stream.ReadAsync(rented.AsMemory(count), cancellationToken);
                if (read == 0)
                {
                    return rented.AsSpan(0, count).ToArray();
                }

                count += read;
                if (count > limit)
                {
                    throw new InvalidDataException("body over the limit");
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }
}
