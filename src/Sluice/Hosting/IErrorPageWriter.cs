namespace Sluice.Hosting;

/// <summary>
/// Writes an error as a page for the requests a person's browser makes (the console), where the APIs answer
/// ProblemDetails or OpenAI's shape. Registered by the console; the exception handler asks it first.
/// </summary>
public interface IErrorPageWriter
{
    bool Serves(HttpContext context);

    Task WriteAsync(HttpContext context, int status, string? detail = null);
}
