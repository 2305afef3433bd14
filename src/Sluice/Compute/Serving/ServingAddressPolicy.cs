using System.Net;
using System.Net.Sockets;

namespace Sluice.Compute.Serving;

/// <summary>
/// Where the gateway will connect when a machine says "reach me here". A machine (an org admin's, on a private fleet)
/// chooses its serving URL, so the server never dials link-local addresses (the cloud metadata service lives at
/// 169.254.169.254), unspecified, multicast or broadcast addresses, and loopback only when the operator allows it
/// (<c>Compute:AllowLoopbackServing</c>, for a machine on the server's own host). Checked on the URL at join and on
/// every resolved address when connecting, so a host name that resolves inward is refused too.
/// </summary>
public static class ServingAddressPolicy
{
    public static string? Refusal(IPAddress address, bool allowLoopback)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (IPAddress.IsLoopback(address))
        {
            return allowLoopback ? null : "is a loopback address (set Compute:AllowLoopbackServing for a machine on the server's own host)";
        }

        if (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) || address.Equals(IPAddress.Broadcast))
        {
            return "is not an address a machine can be reached at";
        }

        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            var bytes = address.GetAddressBytes();
            if (bytes[0] == 169 && bytes[1] == 254)
            {
                return "is a link-local address (where cloud metadata services answer)";
            }

            if (bytes[0] >= 224)
            {
                return "is a multicast or reserved address";
            }
        }
        else if (address.IsIPv6LinkLocal || address.IsIPv6Multicast || address.IsIPv6SiteLocal)
        {
            return "is a link-local, site-local or multicast address";
        }

        return null;
    }

    /// <summary>The refusal for a serving URL's host when it is an address or <c>localhost</c>; names are checked at connect.</summary>
    public static string? Refusal(Uri servingUrl, bool allowLoopback)
    {
        if (string.Equals(servingUrl.IdnHost, "localhost", StringComparison.OrdinalIgnoreCase)
            || servingUrl.IdnHost.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase))
        {
            return allowLoopback ? null : "is a loopback address (set Compute:AllowLoopbackServing for a machine on the server's own host)";
        }

        return IPAddress.TryParse(servingUrl.IdnHost.Trim('[', ']'), out var address) ? Refusal(address, allowLoopback) : null;
    }

    /// <summary>A ConnectCallback that resolves the host and connects only to addresses this policy allows.</summary>
    public static Func<SocketsHttpConnectionContext, CancellationToken, ValueTask<Stream>> Connect(bool allowLoopback) =>
        async (context, cancellationToken) =>
        {
            var addresses = IPAddress.TryParse(context.DnsEndPoint.Host.Trim('[', ']'), out var literal)
                ? [literal]
                : await Dns.GetHostAddressesAsync(context.DnsEndPoint.Host, cancellationToken);
            var allowed = addresses.Where(a => Refusal(a, allowLoopback) is null).ToArray();
            if (allowed.Length == 0)
            {
                throw new HttpRequestException($"The machine's serving address is refused: none of its {addresses.Length} addresses may be dialled.");
            }

            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(allowed, context.DnsEndPoint.Port, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        };
}
