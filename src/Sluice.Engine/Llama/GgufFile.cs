namespace Sluice.Engine.Llama;

/// <summary>The first check of a model file: readable, and starting with GGUF's magic and a version llama.cpp reads.</summary>
internal static class GgufFile
{
    public static void Check(string path)
    {
        Span<byte> header = stackalloc byte[8];
        int read;
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.None);
            read = 0;
            while (read < header.Length)
            {
                var n = stream.Read(header[read..]);
                if (n == 0)
                {
                    break;
                }

                read += n;
            }
        }
        catch (Exception failure) when (failure is IOException or UnauthorizedAccessException)
        {
            throw new EngineLoadException($"cannot read the model file '{path}' ({failure.GetType().Name}); check that it exists and this user may read it", failure);
        }

        if (read < 8 || !header[..4].SequenceEqual("GGUF"u8))
        {
            throw new EngineLoadException($"'{path}' is not a GGUF model file (it does not start with the GGUF magic); pass a .gguf file with --model");
        }

        var version = BitConverter.ToUInt32(header[4..]);
        if (version is < 2 or > 3)
        {
            throw new EngineLoadException($"'{path}' is GGUF version {version}; this engine reads versions 2 and 3");
        }
    }
}
