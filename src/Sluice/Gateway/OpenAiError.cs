using System.Text.Json;

namespace Sluice.Gateway;

/// <summary>Errors on <c>/v1</c> in OpenAI's shape: <c>{"error":{"message","type","param","code"}}</c>.</summary>
public sealed class OpenAiException(int status, string message, string type, string? code, string? param = null, TimeSpan? retryAfter = null)
    : Exception(message)
{
    public int Status { get; } = status;

    public string Type { get; } = type;

    public string? Code { get; } = code;

    public string? Param { get; } = param;

    public TimeSpan? RetryAfter { get; } = retryAfter;

    public static OpenAiException Invalid(string message, string? param = null, string? code = null) =>
        new(StatusCodes.Status400BadRequest, message, "invalid_request_error", code, param);
}

public static class OpenAiError
{
    public static async Task WriteAsync(HttpContext context, int status, string message, string type, string? code, string? param = null)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await using var json = new Utf8JsonWriter(context.Response.Body);
        Write(json, message, type, code, param);
        await json.FlushAsync();
    }

    public static void Write(Utf8JsonWriter json, string message, string type, string? code, string? param)
    {
        json.WriteStartObject();
        json.WriteStartObject("error");
        json.WriteString("message", message);
        json.WriteString("type", type);
        json.WriteString("param", param);
        json.WriteString("code", code);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    public static Task WriteAsync(HttpContext context, OpenAiException error)
    {
        if (error.RetryAfter is { } retryAfter)
        {
            context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return WriteAsync(context, error.Status, error.Message, error.Type, error.Code, error.Param);
    }

    /// <summary>
    /// The <c>/v1</c> answer when the database is unavailable (<see cref="Storage.DatabaseFailures"/>): 503,
    /// <c>server_error</c> / <c>database_unavailable</c>, with <c>Retry-After</c>.
    /// </summary>
    public static OpenAiException DatabaseUnavailable() =>
        new(StatusCodes.Status503ServiceUnavailable, "The service is temporarily unable to reach its database; retry shortly.",
            "server_error", "database_unavailable", retryAfter: Storage.DatabaseFailures.RetryAfter);

    public static bool IsV1(HttpContext context) => context.Request.Path.StartsWithSegments("/v1", StringComparison.Ordinal);
}
