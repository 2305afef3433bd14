using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Sluice.Tests.TestSupport;

/// <summary>
/// A TCP relay on loopback between Sluice and its PostgreSQL server that can play a database outage: <see cref="Cut"/>
/// resets every open connection and every new one (what clients see when the server stops or its host goes away),
/// <see cref="Restore"/> lets connections through again. The shared test server keeps running for other tests.
/// </summary>
public sealed class FaultProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly string _targetHost;
    private readonly int _targetPort;
    private readonly ConcurrentDictionary<long, (TcpClient Client, TcpClient Server)> _links = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private long _next;
    private volatile bool _down;

    private FaultProxy(string targetHost, int targetPort)
    {
        _targetHost = targetHost;
        _targetPort = targetPort;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Connections reset while the proxy was down (so a test can tell the outage was felt).</summary>
    public int Refused => Volatile.Read(ref _refused);

    private int _refused;

    /// <summary>A proxy in front of the PostgreSQL server of <paramref name="connectionString"/>, and that string pointed at it.</summary>
    public static (FaultProxy Proxy, string ConnectionString) For(string connectionString)
    {
        var builder = new Npgsql.NpgsqlConnectionStringBuilder(connectionString);
        var proxy = new FaultProxy(builder.Host!, builder.Port);
        builder.Host = "127.0.0.1";
        builder.Port = proxy.Port;
        return (proxy, builder.ConnectionString);
    }

    public void Cut()
    {
        _down = true;
        foreach (var (id, link) in _links)
        {
            if (_links.TryRemove(id, out _))
            {
                Reset(link.Client);
                Reset(link.Server);
            }
        }
    }

    public void Restore() => _down = false;

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }

            if (_down)
            {
                Interlocked.Increment(ref _refused);
                Reset(client);
                continue;
            }

            _ = LinkAsync(client);
        }
    }

    private async Task LinkAsync(TcpClient client)
    {
        var server = new TcpClient();
        try
        {
            await server.ConnectAsync(_targetHost, _targetPort, _stop.Token);
        }
        catch (Exception)
        {
            Reset(client);
            server.Dispose();
            return;
        }

        var id = Interlocked.Increment(ref _next);
        _links[id] = (client, server);
        if (_down)
        {
            Cut();
            return;
        }

        try
        {
            await Task.WhenAny(PumpAsync(client, server), PumpAsync(server, client));
        }
        finally
        {
            if (_links.TryRemove(id, out _))
            {
                client.Dispose();
                server.Dispose();
            }
        }
    }

    private async Task PumpAsync(TcpClient from, TcpClient to)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            var source = from.GetStream();
            var target = to.GetStream();
            while (true)
            {
                var read = await source.ReadAsync(buffer, _stop.Token);
                if (read == 0)
                {
                    return;
                }

                await target.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
            }
        }
        catch (Exception)
        {
            // reset by Cut, or the other side went away
        }
    }

    private static void Reset(TcpClient client)
    {
        try
        {
            client.Client.LingerState = new LingerOption(true, 0); // close with RST, as a dead peer does
            client.Client.Close();
        }
        catch (Exception)
        {
        }

        client.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        Cut();
        await _accepting;
        _stop.Dispose();
    }
}
