using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Sluice.Compute.Protocol;

namespace Sluice.Compute.Serving;

/// <summary>What the gateway needs to reach one machine's serving endpoint: from the machines table, pinned at join.</summary>
/// <param name="MachineId">The machine.</param>
/// <param name="ServingUrl">Where its agent listens, as it advertised at join (<c>https://10.0.0.7:8443</c>).</param>
/// <param name="CertificateSha256">Lower-case hex SHA-256 of its serving certificate's DER bytes.</param>
/// <param name="ServingToken">The token the gateway presents to it (the agent keeps only its hash).</param>
public sealed record MachineEndpoint(string MachineId, Uri ServingUrl, string CertificateSha256, string ServingToken)
{
    // The token never appears in a log line or an exception through ToString.
    public override string ToString() => $"MachineEndpoint {{ MachineId = {MachineId}, ServingUrl = {ServingUrl} }}";

    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append("MachineId = ").Append(MachineId);
        return true;
    }
}

/// <summary>
/// The seam between the gateway and tasks on machines. The gateway builds a request to
/// <see cref="MachineTransportPaths.TaskUri"/> and sends it through <see cref="Invoker"/>; the transport adds the serving token and decides how
/// the bytes travel. <see cref="DirectMachineTransport"/> opens HTTPS to the machine's advertised URL. A machine that
/// accepts no inbound connection (behind NAT at home) will get a tunnel transport instead: its agent dials out to the
/// server and keeps that connection, and <c>Invoker</c> returns an invoker that sends over it (HTTP/2 streams over the
/// agent's connection); nothing above this interface changes.
/// </summary>
public interface IMachineTransport
{
    /// <summary>An invoker for one machine; pooled connections, shared by all callers; do not dispose it.</summary>
    HttpMessageInvoker Invoker(MachineEndpoint machine);

    /// <summary>Closes the pooled connections of a machine (revoked, decommissioned, or re-joined with a new certificate).</summary>
    void Forget(string machineId);
}

public static class MachineTransportPaths
{
    /// <summary><c>{serving url}/tasks/{task id}/{path}</c>: what the agent proxies to the task's <c>/{path}</c> on loopback.</summary>
    public static Uri TaskUri(MachineEndpoint machine, string taskId, string pathAndQuery)
    {
        var path = pathAndQuery.StartsWith('/') ? pathAndQuery : "/" + pathAndQuery;
        var root = machine.ServingUrl.GetLeftPart(UriPartial.Authority);
        return new Uri($"{root}{AgentPaths.TaskPrefix}{Uri.EscapeDataString(taskId)}{path}");
    }

    /// <summary><c>{serving url}/agent/wake</c>: asks the agent to heartbeat now.</summary>
    public static Uri WakeUri(MachineEndpoint machine) => new($"{machine.ServingUrl.GetLeftPart(UriPartial.Authority)}{AgentPaths.Wake}");
}

/// <summary>
/// HTTPS straight to the machine. The server certificate is accepted only if its SHA-256 equals the fingerprint pinned
/// at join: no CA trust, no host name check (a machine's certificate is self-signed and its address may change). One
/// connection pool per machine; the serving token goes on every request and nowhere else.
/// </summary>
public sealed class DirectMachineTransport : IMachineTransport, IDisposable
{
    private readonly ConcurrentDictionary<string, Pool> _pools = new(StringComparer.Ordinal);
    private readonly TimeSpan _connectTimeout;
    private readonly bool _allowLoopback;

    /// <param name="connectTimeout">How long a connection to a machine may take (10 s by default).</param>
    /// <param name="allowLoopback">Whether machines on this host may be dialled (<see cref="ServingAddressPolicy"/>).</param>
    public DirectMachineTransport(TimeSpan? connectTimeout = null, bool allowLoopback = false)
    {
        _connectTimeout = connectTimeout ?? TimeSpan.FromSeconds(10);
        _allowLoopback = allowLoopback;
    }

    public HttpMessageInvoker Invoker(MachineEndpoint machine)
    {
        while (true)
        {
            var pool = _pools.GetOrAdd(machine.MachineId, _ => new Pool(machine, _connectTimeout, _allowLoopback));
            if (pool.Serves(machine))
            {
                return pool.Invoker;
            }

            // The machine re-joined (new certificate, token or address): a new pool; the old one's requests finish.
            if (_pools.TryUpdate(machine.MachineId, new Pool(machine, _connectTimeout, _allowLoopback), pool))
            {
                pool.Retire();
            }
        }
    }

    public void Forget(string machineId)
    {
        if (_pools.TryRemove(machineId, out var pool))
        {
            pool.Retire();
        }
    }

    public void Dispose()
    {
        foreach (var machineId in _pools.Keys)
        {
            Forget(machineId);
        }
    }

    /// <summary>True when <paramref name="certificate"/>'s SHA-256 is <paramref name="pinnedSha256"/> (hex), compared in constant time.</summary>
    internal static bool MatchesPin(X509Certificate? certificate, string pinnedSha256)
    {
        if (certificate is null)
        {
            return false;
        }

        byte[] pinned;
        try
        {
            pinned = Convert.FromHexString(pinnedSha256);
        }
        catch (FormatException)
        {
            return false;
        }

        var actual = SHA256.HashData(certificate.GetRawCertData());
        return pinned.Length == actual.Length && CryptographicOperations.FixedTimeEquals(actual, pinned);
    }

    private sealed class Pool
    {
        private readonly MachineEndpoint _machine;

        public Pool(MachineEndpoint machine, TimeSpan connectTimeout, bool allowLoopback)
        {
            _machine = machine;
            var pinned = machine.CertificateSha256;
            var handler = new SocketsHttpHandler
            {
                UseProxy = false,
                AllowAutoRedirect = false,
                UseCookies = false,
                AutomaticDecompression = DecompressionMethods.None,
                ConnectTimeout = connectTimeout,
                ConnectCallback = ServingAddressPolicy.Connect(allowLoopback),
                PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2),
                EnableMultipleHttp2Connections = true,
                SslOptions = new SslClientAuthenticationOptions
                {
                    RemoteCertificateValidationCallback = (_, certificate, _, _) => MatchesPin(certificate, pinned),
                },
            };
            Invoker = new HttpMessageInvoker(new TokenHandler(machine.ServingToken) { InnerHandler = handler });
        }

        public HttpMessageInvoker Invoker { get; }

        public bool Serves(MachineEndpoint machine) => machine == _machine;

        /// <summary>New requests go to the new pool; the old connections close once idle, the handler with them.</summary>
        public void Retire() => _ = Task.Delay(TimeSpan.FromMinutes(5)).ContinueWith(_ => Invoker.Dispose(), TaskScheduler.Default);
    }

    private sealed class TokenHandler(string token) : DelegatingHandler
    {
        private readonly AuthenticationHeaderValue _authorization = new(AgentPaths.ServingScheme, token);

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Headers.Authorization = _authorization;
            return base.SendAsync(request, cancellationToken);
        }

        protected override HttpResponseMessage Send(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Headers.Authorization = _authorization;
            return base.Send(request, cancellationToken);
        }
    }
}
