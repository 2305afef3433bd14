namespace Sluice.Hosting;

/// <summary>Ids as the OpenAI-compatible API shows them: a prefix and the 32 hex digits of a Guid (<c>file-…</c>, <c>batch_…</c>).</summary>
public static class PublicId
{
    public static string Format(string prefix, Guid id) => prefix + id.ToString("N");

    public static bool TryParse(string prefix, string? value, out Guid id)
    {
        id = Guid.Empty;
        return value is not null && value.StartsWith(prefix, StringComparison.Ordinal) && value.Length == prefix.Length + 32
            && Guid.TryParseExact(value.AsSpan(prefix.Length), "N", out id);
    }
}
