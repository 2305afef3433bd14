namespace Sluice.Hosting;

/// <summary>CSV the way a spreadsheet will read it safely.</summary>
public static class Csv
{
    /// <summary>
    /// A text field: quoted when it holds a comma, quote or line break, and never read as a formula (a leading
    /// <c>= + - @</c>, tab or carriage return is escaped with an apostrophe). Numbers are written by their callers, unquoted.
    /// </summary>
    public static string Field(string value)
    {
        if (value.Length > 0 && value[0] is '=' or '+' or '-' or '@' or '\t' or '\r')
        {
            value = "'" + value;
        }

        return value.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : value;
    }
}
