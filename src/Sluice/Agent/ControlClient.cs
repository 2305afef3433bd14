using System.Net;
using System.Net.Http.Headers;
using System.Reflection;
using System.Text.Json;
using Sluice.Compute.Protocol;

namespace Sluice.Agent;

/// <summary>How a call to the server ended, as the agent acts on it.</summary>
public enum ControlOutcome
{
    Ok,

    /// <summary>The server could not be reached, timed out, or answered 5xx (or 429): try again later.</summary>
    Unavailable,

    /// <summary>401: the credential (or join token) is not accepted: revoked, unknown, forged.</summary>
    Unauthorized,

    /// <summary>410: the machine was decommissioned.</summary>
    Gone,

    /// <summary>Another 4xx: the server refused what was sent.</summary>
    Refused,
}

public sealed record ControlResult<T>(ControlOutcome Outcome, T? Value, int? Status, string Detail)
    where T : class;

/// <summary>
/// The agent's calls to the server (join, heartbeat): JSON in <see cref="ComputeJson"/>'s shapes over HTTPS (plain HTTP
/// only to a loopback address). A refusal's ProblemDetails <c>detail</c> is kept, cut to one line; a reply's body is
/// never logged (a heartbeat reply carries task secrets).
/// </summary>
public sealed class ControlClient : IDisposable
{
    private const int MaxDetail = 500;
    private readonly HttpClient _http;

    public ControlClient(Uri server, TimeSpan timeout, HttpMessageHandler? handler = null)
    {
        _http = new HttpClient(handler ?? new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(10),
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            AllowAutoRedirect = false, // a redirect could carry the credential elsewhere
        })
        {
            BaseAddress = server,
            Timeout = timeout,
        };
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("sluice-agent", AgentVersion));
    }

    /// <summary>The running executable's version (without the source revision).</summary>
    public static string AgentVersion { get; } =
        (typeof(ControlClient).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            ?? typeof(ControlClient).Assembly.GetName().Version?.ToString() ?? "0.0.0").Split('+')[0];

    /// <summary>
    /// Control traffic carries the join token and the machine's credential: HTTPS, or plain HTTP to a loopback address
    /// (a server on the same machine, or a test). Returns why a URL is refused, or null.
    /// </summary>
    public static string? Refusal(string url, out Uri? server)
    {
        server = null;
        if (!Uri.TryCreate(url, UriKind.Absolute, out var parsed) || (parsed.Scheme != Uri.UriSchemeHttps && parsed.Scheme != Uri.UriSchemeHttp))
        {
            return $"--server must be an absolute https:// URL, e.g. https://sluice.example.com (got '{Shorten(url)}').";
        }

        if (parsed.Scheme == Uri.UriSchemeHttp && !IsLoopback(parsed))
        {
            return $"--server {parsed.GetLeftPart(UriPartial.Authority)} uses plain http:// to a host that is not loopback; control traffic carries the machine's credential and must use https:// (http:// is accepted only for localhost, 127.0.0.0/8 and ::1).";
        }

        if (parsed.UserInfo.Length > 0 || parsed.Query.Length > 0 || parsed.Fragment.Length > 0)
        {
            return "--server must be the server's base URL, without user name, query or fragment.";
        }

        server = new Uri(parsed.GetLeftPart(UriPartial.Path).TrimEnd('/') + "/");
        return null;
    }

    public static bool IsLoopback(Uri uri) =>
        uri.IsLoopback || (IPAddress.TryParse(uri.DnsSafeHost, out var address) && IPAddress.IsLoopback(address));

    public async Task<ControlResult<JoinResponse>> JoinAsync(JoinRequest request, CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, AgentPaths.Join.TrimStart('/'))
        {
            Content = JsonContent.Create(request, ComputeJson.Default.JoinRequest),
        };
        return await SendAsync(message, ComputeJson.Default.JoinResponse, r => r.MachineId.Length > 0 && r.Credential.Length > 0 && r.ServingToken.Length > 0, cancellationToken);
    }

    public async Task<ControlResult<HeartbeatResponse>> HeartbeatAsync(string credential, HeartbeatRequest request, CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, AgentPaths.Heartbeat.TrimStart('/'))
        {
            Content = JsonContent.Create(request, ComputeJson.Default.HeartbeatRequest),
        };
        message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", credential);
        return await SendAsync(message, ComputeJson.Default.HeartbeatResponse, r => r.MachineState.Length > 0, cancellationToken);
    }

    private async Task<ControlResult<T>> SendAsync<T>(
        HttpRequestMessage message, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> shape, Func<T, bool> complete, CancellationToken cancellationToken)
        where T : class
    {
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            return new(ControlOutcome.Unavailable, null, null, ex.HttpRequestError switch
            {
                HttpRequestError.NameResolutionError => "the server's name does not resolve",
                HttpRequestError.ConnectionError => "the server refused or dropped the connection",
                HttpRequestError.SecureConnectionError => "the TLS handshake with the server failed (is its certificate trusted by this machine?)",
                _ => $"the request failed ({ex.HttpRequestError})",
            });
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new(ControlOutcome.Unavailable, null, null, $"no answer within {_http.Timeout.TotalSeconds:0} s");
        }

        using (response)
        {
            var status = (int)response.StatusCode;
            if (response.IsSuccessStatusCode)
            {
                try
                {
                    var value = await response.Content.ReadFromJsonAsync(shape, cancellationToken);
                    if (value is not null && complete(value))
                    {
                        return new(ControlOutcome.Ok, value, status, "");
                    }
                }
                catch (Exception ex) when (ex is JsonException or NotSupportedException or HttpRequestException or IOException)
                {
                    // fall through: the reply is unreadable (its text is never repeated: it may hold secrets)
                }

                return new(ControlOutcome.Unavailable, null, status, $"the server's reply ({status}) is not the expected JSON (a proxy in the way, or a server of another version?)");
            }

            var detail = await ProblemDetailAsync(response, cancellationToken);
            var outcome = status switch
            {
                401 => ControlOutcome.Unauthorized,
                410 => ControlOutcome.Gone,
                429 or >= 500 => ControlOutcome.Unavailable,
                _ => ControlOutcome.Refused,
            };
            return new(outcome, null, status, detail ?? $"the server answered {status} {response.ReasonPhrase}");
        }
    }

    /// <summary>A ProblemDetails' <c>detail</c> (else <c>title</c>), on one line and bounded, or null.</summary>
    private static async Task<string?> ProblemDetailAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            var body = await response.Content.ReadAsByteArrayAsync(cancellationToken);
            if (body.Length is 0 or > 64 * 1024)
            {
                return null;
            }

            using var json = JsonDocument.Parse(body);
            foreach (var name in new[] { "detail", "title" })
            {
                if (json.RootElement.ValueKind == JsonValueKind.Object
                    && json.RootElement.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
                    && value.GetString() is { Length: > 0 } text)
                {
                    return Shorten(text);
                }
            }
        }
        catch (Exception ex) when (ex is JsonException or HttpRequestException or IOException)
        {
            // not ProblemDetails
        }

        return null;
    }

    private static string Shorten(string text)
    {
        var line = string.Join(' ', text.Split(['\r', '\n', '\t'], StringSplitOptions.RemoveEmptyEntries)).Trim();
        line = new string(line.Where(c => !char.IsControl(c)).ToArray());
        return line.Length <= MaxDetail ? line : line[..MaxDetail] + "…";
    }

    public void Dispose() => _http.Dispose();
}
