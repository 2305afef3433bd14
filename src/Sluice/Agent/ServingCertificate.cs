using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Sluice.Agent;

/// <summary>
/// The agent's serving certificate: self-signed ECDSA P-256, valid one year, with subject alternative names for the
/// advertised host (and the machine's name and loopback). The server pins its SHA-256 fingerprint at join, so no
/// certificate authority is involved; rotating it means joining again.
/// </summary>
public static class ServingCertificate
{
    public static readonly TimeSpan Validity = TimeSpan.FromDays(365);

    public static X509Certificate2 Create(string advertisedHost, DateTimeOffset now)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={Cn(advertisedHost)}, O=Sluice agent"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false)); // server authentication
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));

        var names = new SubjectAlternativeNameBuilder();
        foreach (var host in new[] { advertisedHost, Dns.GetHostName(), "localhost" }.Distinct(StringComparer.OrdinalIgnoreCase))
        {
            if (IPAddress.TryParse(host.Trim('[', ']'), out var address))
            {
                names.AddIpAddress(address);
            }
            else if (host.Length > 0 && Uri.CheckHostName(host) == UriHostNameType.Dns)
            {
                names.AddDnsName(host); // a host name that is not a valid DNS name (an underscore) is left out
            }
        }

        if (!IPAddress.TryParse(advertisedHost, out var advertised) || !IPAddress.IsLoopback(advertised))
        {
            names.AddIpAddress(IPAddress.Loopback);
        }

        request.CertificateExtensions.Add(names.Build());
        return request.CreateSelfSigned(now.AddMinutes(-5), now + Validity);
    }

    /// <summary>Lower-case hex SHA-256 of the certificate's DER bytes: what the server pins.</summary>
    public static string Fingerprint(X509Certificate2 certificate) =>
        Convert.ToHexStringLower(SHA256.HashData(certificate.RawData));

    /// <summary>PKCS#12 with the private key and no password (the file itself is owner-only).</summary>
    public static byte[] ExportPkcs12(X509Certificate2 certificate) => certificate.Export(X509ContentType.Pkcs12);

    /// <summary>The certificate with its private key, for the serving endpoint (Kestrel's HTTPS).</summary>
    public static X509Certificate2 Load(string dataDir, AgentIdentity identity) =>
        X509CertificateLoader.LoadPkcs12FromFile(Path.Combine(dataDir, identity.CertificateFile), password: null);

    private static string Cn(string host) => host.Replace(",", "", StringComparison.Ordinal).Replace("=", "", StringComparison.Ordinal);
}
