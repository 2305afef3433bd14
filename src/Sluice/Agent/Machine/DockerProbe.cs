using System.Net.Sockets;

namespace Sluice.Agent.Machine;

/// <summary>
/// Whether a Docker Engine answers on its Unix socket (<c>GET /_ping</c> → 200). The socket is DOCKER_HOST when that is
/// a <c>unix://</c> address, else /var/run/docker.sock.
/// </summary>
public sealed class DockerProbe(string? socketPath = null)
{
    public const string DefaultSocket = "/var/run/docker.sock";

    public string SocketPath { get; } = socketPath ?? FromEnvironment() ?? DefaultSocket;

    public async Task<bool> PingAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (OperatingSystem.IsWindows() || !File.Exists(SocketPath))
        {
            return false;
        }

        using var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath), ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        using var client = new HttpClient(handler) { Timeout = timeout };
        try
        {
            using var response = await client.GetAsync(new Uri("http://docker/_ping"), cancellationToken);
            return response.IsSuccessStatusCode;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or SocketException or IOException && !cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    private static string? FromEnvironment()
    {
        const string Unix = "unix://";
        var host = Environment.GetEnvironmentVariable("DOCKER_HOST");
        return host is not null && host.StartsWith(Unix, StringComparison.Ordinal) ? host[Unix.Length..] : null;
    }
}
