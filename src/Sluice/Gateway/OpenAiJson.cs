using System.Text.Json;

namespace Sluice.Gateway;

/// <summary>Writes <c>/v1</c> answers in OpenAI's shapes: one object, or a cursor-paged list.</summary>
public static class OpenAiJson
{
    public static async Task WriteAsync(HttpContext context, Action<Utf8JsonWriter> write)
    {
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/json";
        await using var json = new Utf8JsonWriter(context.Response.Body);
        write(json);
        await json.FlushAsync(context.RequestAborted);
    }

    /// <summary><c>{"object":"list","data":[…],"first_id","last_id","has_more"}</c>.</summary>
    public static Task WriteListAsync<T>(HttpContext context, IReadOnlyList<T> items, Func<T, string> id, bool hasMore, Action<Utf8JsonWriter, T> write) =>
        WriteAsync(context, json =>
        {
            json.WriteStartObject();
            json.WriteString("object", "list");
            json.WriteStartArray("data");
            foreach (var item in items)
            {
                write(json, item);
            }

            json.WriteEndArray();
            json.WriteString("first_id", items.Count > 0 ? id(items[0]) : null);
            json.WriteString("last_id", items.Count > 0 ? id(items[^1]) : null);
            json.WriteBoolean("has_more", hasMore);
            json.WriteEndObject();
        });
}
