using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;

namespace Sluice.Hosting;

/// <summary>
/// A request that cannot be honoured, thrown before anything is written so nothing is half-created, and answered on
/// <c>/api</c> as ProblemDetails with field-level <c>errors</c>. Messages name fields and rules, never submitted values.
/// </summary>
public sealed class ApiProblemException(
    int status, string title, string detail, IReadOnlyDictionary<string, string[]>? errors = null, TimeSpan? retryAfter = null)
    : Exception(detail)
{
    public TimeSpan? RetryAfter { get; } = retryAfter;

    public int Status { get; } = status;

    public string Title { get; } = title;

    public IReadOnlyDictionary<string, string[]>? Errors { get; } = errors;
}

public static class ApiProblem
{
    public static ApiProblemException Invalid(string field, string message) =>
        new(StatusCodes.Status400BadRequest, "The request is invalid.", $"{field}: {message}", new Dictionary<string, string[]> { [field] = [message] });

    public static ApiProblemException Invalid(IReadOnlyDictionary<string, string[]> errors) =>
        new(StatusCodes.Status400BadRequest, "The request is invalid.",
            string.Join(" ", errors.Select(e => $"{e.Key}: {string.Join(" ", e.Value)}")), errors);

    public static ApiProblemException Conflict(string field, string message) =>
        new(StatusCodes.Status409Conflict, "The request conflicts with the current state.", $"{field}: {message}",
            new Dictionary<string, string[]> { [field] = [message] });

    public static ApiProblemException NotFound(string what) =>
        new(StatusCodes.Status404NotFound, "Not found.", $"No {what} with that id exists here.");

    public static ApiProblemException Forbidden(string detail) =>
        new(StatusCodes.Status403Forbidden, "Not allowed.", detail);

    public static ApiProblemException TooManyRequests(string detail, TimeSpan retryAfter) =>
        new(StatusCodes.Status429TooManyRequests, "Too many requests.", detail, retryAfter: retryAfter);

    /// <summary>The <c>/api</c> answer when the database is unavailable (<see cref="Storage.DatabaseFailures"/>).</summary>
    public static ApiProblemException DatabaseUnavailable() =>
        new(StatusCodes.Status503ServiceUnavailable, "The database is unavailable.",
            "The service cannot reach its database right now; nothing was changed. Retry after the time in Retry-After.",
            retryAfter: Storage.DatabaseFailures.RetryAfter);

    public static ApiProblemException Unauthorized(string detail) =>
        new(StatusCodes.Status401Unauthorized, "Not signed in.", detail);
}

/// <summary>Collects field errors, then throws them all at once.</summary>
public sealed class FieldErrors
{
    private readonly Dictionary<string, List<string>> _errors = new(StringComparer.Ordinal);

    public bool Any => _errors.Count > 0;

    public void Add(string field, string message)
    {
        if (!_errors.TryGetValue(field, out var messages))
        {
            _errors[field] = messages = [];
        }

        messages.Add(message);
    }

    /// <summary>The first error as "field: message", for callers that report one line (the agent's command line).</summary>
    public string? FirstMessage() => _errors.Select(e => $"{e.Key}: {e.Value[0]}").FirstOrDefault();

    public void ThrowIfAny()
    {
        if (Any)
        {
            throw ApiProblem.Invalid(_errors.ToDictionary(e => e.Key, e => e.Value.ToArray()));
        }
    }
}

/// <summary>Writes <see cref="ApiProblemException"/>, unreadable bodies and unexpected failures as ProblemDetails.</summary>
internal sealed partial class ApiProblemHandler(IProblemDetailsService problemDetails, ILogger<ApiProblemHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is not ApiProblemException and not Gateway.OpenAiException
            && httpContext.RequestServices.GetService<Storage.DatabaseAvailability>() is var availability
            && (availability?.Observe(exception) ?? Storage.DatabaseFailures.IsUnavailable(exception)))
        {
            // A database outage is the service's, not the caller's: 503 with Retry-After in each protocol's shape.
            LogDatabaseUnavailable(logger, exception.GetType().Name, httpContext.Request.Method);
            exception = Gateway.OpenAiError.IsV1(httpContext) ? Gateway.OpenAiError.DatabaseUnavailable() : ApiProblem.DatabaseUnavailable();
        }

        if (Gateway.OpenAiError.IsV1(httpContext))
        {
            if (exception is Gateway.OpenAiException openAi)
            {
                await Gateway.OpenAiError.WriteAsync(httpContext, openAi);
                return true;
            }

            await Gateway.OpenAiError.WriteAsync(httpContext, V1Error(exception, httpContext));
            return true;
        }

        var problem = exception switch
        {
            ApiProblemException api => new ProblemDetails { Status = api.Status, Title = api.Title, Detail = api.Message },
            BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } => new ProblemDetails
            {
                Status = StatusCodes.Status413PayloadTooLarge,
                Title = "The request body is too large.",
                Detail = "The body is larger than this endpoint takes; send less.",
            },
            Billing.InsufficientFundsException => new ProblemDetails { Status = StatusCodes.Status402PaymentRequired, Title = "Insufficient funds.", Detail = "The wallet does not hold enough funds; top it up." },
            BadHttpRequestException bad => new ProblemDetails
            {
                Status = bad.StatusCode,
                Title = "The request could not be read.",
                Detail = "The body must be JSON matching the documented request shape, sent with Content-Type: application/json.",
            },
            _ => null,
        };

        if (problem is null)
        {
            // The type only: an exception message may quote data it was handed.
            LogUnexpected(logger, exception.GetType().FullName ?? "exception", httpContext.Request.Method, httpContext.Request.Path);
            problem = new ProblemDetails { Status = StatusCodes.Status500InternalServerError, Title = "Something went wrong on our side.", Detail = "The failure was logged; retry later." };
        }

        if (exception is ApiProblemException { Errors: { } errors })
        {
            problem.Extensions["errors"] = errors;
        }

        if (exception is ApiProblemException { RetryAfter: { } retryAfter })
        {
            httpContext.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        httpContext.Response.StatusCode = problem.Status!.Value;
        if (httpContext.RequestServices.GetService<IErrorPageWriter>() is { } pages && pages.Serves(httpContext))
        {
            await pages.WriteAsync(httpContext, problem.Status.Value, exception is ApiProblemException ? problem.Detail : null);
            return true;
        }

        return await problemDetails.TryWriteAsync(new ProblemDetailsContext { HttpContext = httpContext, ProblemDetails = problem, Exception = exception });
    }

    /// <summary>
    /// A failure outside the gateway's own pipeline on <c>/v1</c> (files, batches, the key gate, the server reading the
    /// body) in OpenAI's shape: a shared helper's <see cref="ApiProblemException"/> keeps its status and its field-naming
    /// detail, an unreadable or oversize body is the caller's 4xx, anything else a logged 500.
    /// </summary>
    private Gateway.OpenAiException V1Error(Exception exception, HttpContext httpContext)
    {
        switch (exception)
        {
            case Gateway.OpenAiException openAi:
                return openAi;
            case ApiProblemException api:
                return new Gateway.OpenAiException(api.Status, api.Message, api.Status >= 500 ? "server_error" : "invalid_request_error",
                    api.Errors is { Count: > 0 } ? "invalid_value" : null, api.Errors?.Keys.FirstOrDefault(), api.RetryAfter);
            case BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge }:
                httpContext.Response.Headers.Connection = "close"; // the rest of the body is not read
                return new Gateway.OpenAiException(413, "The request body is larger than this endpoint takes; send less.", "invalid_request_error", "request_too_large");
            case BadHttpRequestException bad:
                return new Gateway.OpenAiException(bad.StatusCode, "The request could not be read.", "invalid_request_error", null);
            default:
                LogUnexpected(logger, exception.GetType().FullName ?? "exception", httpContext.Request.Method, httpContext.Request.Path);
                return new Gateway.OpenAiException(500, "The server had an error processing your request; retry later.", "server_error", null);
        }
    }

    [LoggerMessage(21, LogLevel.Debug, "{Method} answered 503: the database is unavailable ({ExceptionType})")]
    private static partial void LogDatabaseUnavailable(ILogger logger, string exceptionType, string method);

    [LoggerMessage(20, LogLevel.Error, "Unhandled {ExceptionType} on {Method} {Path}")]
    private static partial void LogUnexpected(ILogger logger, string exceptionType, string method, string path);
}
