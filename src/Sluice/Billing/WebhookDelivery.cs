using System.Net;
using System.Net.Sockets;

namespace Sluice.Billing;

/// <summary>
/// The HTTP handler for organizations' webhooks: a tenant chooses the URL, so it must not reach Sluice's own machine or
/// network. Every address the host name resolves to is checked when the connection is made (so DNS cannot swap in a
/// private address after a check), loopback, link-local, private, shared, multicast and reserved addresses are refused
/// unless an operator allowed their network (<see cref="BillingOptions.WebhookAllowedNetworks"/>), redirects are not
/// followed, and no proxy or cookie is used.
/// </summary>
public static class WebhookDelivery
{
    private static readonly IPNetwork[] NonPublic =
    [
        IPNetwork.Parse("0.0.0.0/8"), IPNetwork.Parse("10.0.0.0/8"), IPNetwork.Parse("100.64.0.0/10"), IPNetwork.Parse("127.0.0.0/8"),
        IPNetwork.Parse("169.254.0.0/16"), IPNetwork.Parse("172.16.0.0/12"), IPNetwork.Parse("192.0.0.0/24"), IPNetwork.Parse("192.0.2.0/24"),
        IPNetwork.Parse("192.168.0.0/16"), IPNetwork.Parse("198.18.0.0/15"), IPNetwork.Parse("198.51.100.0/24"), IPNetwork.Parse("203.0.113.0/24"),
        IPNetwork.Parse("224.0.0.0/4"), IPNetwork.Parse("240.0.0.0/4"),
        IPNetwork.Parse("::/96"), IPNetwork.Parse("::1/128"), IPNetwork.Parse("64:ff9b::/96"), IPNetwork.Parse("64:ff9b:1::/48"), IPNetwork.Parse("100::/64"),
        IPNetwork.Parse("2001:db8::/32"), IPNetwork.Parse("fc00::/7"), IPNetwork.Parse("fe80::/10"), IPNetwork.Parse("fec0::/10"), IPNetwork.Parse("ff00::/8"),
    ];

    public static IReadOnlyList<IPNetwork> AllowedNetworks(BillingOptions options) =>
        options.WebhookAllowedNetworks.Select(n => IPNetwork.Parse(n)).ToList();

    /// <summary>Whether a webhook may connect to <paramref name="address"/>: public, or in a network the operator allowed.</summary>
    public static bool IsPermitted(IPAddress address, IReadOnlyList<IPNetwork> allowed)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily == AddressFamily.InterNetworkV6 && address.ScopeId != 0)
        {
            address = new IPAddress(address.GetAddressBytes()); // fe80::1%eth0 is still fe80::1
        }

        return allowed.Any(n => n.BaseAddress.AddressFamily == address.AddressFamily && n.Contains(address))
            || !NonPublic.Any(n => n.BaseAddress.AddressFamily == address.AddressFamily && n.Contains(address));
    }

    public static SocketsHttpHandler CreateHandler(IReadOnlyList<IPNetwork> allowed) => new()
    {
        AllowAutoRedirect = false,
        UseProxy = false,
        UseCookies = false,
        ConnectTimeout = TimeSpan.FromSeconds(5),
        PooledConnectionLifetime = TimeSpan.FromMinutes(1),
        ConnectCallback = async (context, cancellationToken) =>
        {
            var host = context.DnsEndPoint.Host;
            var addresses = IPAddress.TryParse(host.Trim('[', ']'), out var literal) ? [literal] : await Dns.GetHostAddressesAsync(host, cancellationToken);
            var permitted = addresses.Where(a => IsPermitted(a, allowed)).ToList();
            if (permitted.Count == 0)
            {
                throw new WebhookAddressRefusedException();
            }

            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(permitted.Select(a => a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a).ToArray(), context.DnsEndPoint.Port, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    };
}

/// <summary>The webhook's host resolves only to addresses webhooks may not reach.</summary>
public sealed class WebhookAddressRefusedException()
    : Exception("The webhook's host resolves only to loopback, link-local, private or reserved addresses; an operator can allow a network with Billing:WebhookAllowedNetworks.");
