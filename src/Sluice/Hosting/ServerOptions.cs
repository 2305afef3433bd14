using System.ComponentModel.DataAnnotations;

namespace Sluice.Hosting;

public enum LogFormat
{
    Text,
    Json,
}

/// <summary>The <c>Server</c> settings: where Sluice listens, where it keeps its files, how it logs and stops.</summary>
public sealed record ServerOptions : IValidatableObject
{
    public const string Section = "Server";

    /// <summary>Semicolon-separated listen addresses.</summary>
    [Required(ErrorMessage = "is required")]
    public string Urls { get; init; } = "http://127.0.0.1:8080";

    /// <summary>Directory for the embedded database and key files; relative paths start at the working directory.</summary>
    [Required(ErrorMessage = "is required")]
    public string DataDir { get; init; } = "data";

    /// <summary>How long a stopping server waits for in-flight requests before it exits.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00", ErrorMessage = "must be between {1} and {2}")]
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    public LogFormat LogFormat { get; init; } = LogFormat.Text;

    /// <summary>
    /// The largest request body the management API (<c>/api</c>) accepts, in bytes; larger ones get 413 before the body
    /// is read. Endpoints that need more or less say so themselves (the Stripe webhook: 256 KiB). <c>/v1</c> and file
    /// uploads have their own limits.
    /// </summary>
    [Range(1024, 32 * 1024 * 1024, ErrorMessage = "must be between {1} and {2}")]
    public long ApiMaxBodyBytes { get; init; } = 64 * 1024;

    public string[] ListenUrls() =>
        Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (string.IsNullOrWhiteSpace(Urls))
        {
            yield break;
        }

        foreach (var url in ListenUrls())
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri)
                || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
                || uri.AbsolutePath != "/")
            {
                yield return new ValidationResult(
                    $"'{url}' is not a listen address; use the form http://127.0.0.1:8080 (several separated by ';')",
                    [nameof(Urls)]);
            }
        }
    }
}
