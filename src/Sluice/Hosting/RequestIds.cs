namespace Sluice.Hosting;

/// <summary>
/// Every answer carries <c>x-request-id</c>, errors and 5xx included: the client's own id when it is a safe token,
/// else <c>req_</c> and a v7 Guid (the usage event's id on <c>/v1</c>). Set as the response starts, so an exception
/// handler that clears the response still sends it.
/// </summary>
public static class RequestIds
{
    public const string Header = "x-request-id";

    private static readonly object Key = new();

    /// <summary>The first middleware: assigns the request's id and promises the header.</summary>
    public static IApplicationBuilder UseRequestIds(this IApplicationBuilder app)
    {
        var time = app.ApplicationServices.GetRequiredService<TimeProvider>();
        return app.Use((context, next) =>
        {
            Of(context, time);
            return next(context);
        });
    }

    /// <summary>The request's id and the Guid behind it (assigned on first use).</summary>
    public static (Guid Id, string RequestId) Of(HttpContext context, TimeProvider time)
    {
        if (context.Items.TryGetValue(Key, out var existing) && existing is Assigned assigned)
        {
            return (assigned.Id, assigned.RequestId);
        }

        var id = Guid.CreateVersion7(time.GetUtcNow());
        var given = context.Request.Headers[Header].ToString();
        var requestId = IsSafe(given) ? given : "req_" + id.ToString("N");
        var value = new Assigned(id, requestId);
        context.Items[Key] = value;
        context.Response.OnStarting(static state =>
        {
            var (response, requestId) = ((HttpResponse, string))state;
            response.Headers[Header] = requestId;
            return Task.CompletedTask;
        }, (context.Response, requestId));
        return (id, requestId);
    }

    private static bool IsSafe(string given)
    {
        if (given.Length is 0 or > 64)
        {
            return false;
        }

        foreach (var c in given)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            {
                return false;
            }
        }

        return true;
    }

    private sealed record Assigned(Guid Id, string RequestId);
}
