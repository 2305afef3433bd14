using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Sluice.Agent;

namespace Sluice.Tests.Agent;

[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class AgentDataDirectoryTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "sluice-agent-dir-" + Guid.NewGuid().ToString("N")[..12]);

    private static AgentIdentity Identity(string certificateSha256 = "ab") => new()
    {
        ServerUrl = "https://sluice.example.com",
        MachineId = "mch_1",
        Credential = "smc_secret",
        ServingTokenSha256 = new string('0', 64),
        ServingListenUrl = "https://0.0.0.0:8443",
        ServingUrl = "https://gpu-1.example.com:8443",
        CertificateFile = AgentDataDirectory.CertificateFile,
        CertificateSha256 = certificateSha256,
    };

    [Fact]
    public void The_identity_and_certificate_are_owner_only_files_in_an_owner_only_directory()
    {
        var dir = Path.Combine(_root, "agent");
        AgentDataDirectory.Write(dir, Identity(), [1, 2, 3]);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(dir));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(dir, AgentDataDirectory.IdentityFile)));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(dir, AgentDataDirectory.CertificateFile)));
        Assert.Equal([AgentDataDirectory.IdentityFile, AgentDataDirectory.CertificateFile], Directory.GetFiles(dir).Select(Path.GetFileName).Order());
        Assert.Equal(Identity(), AgentDataDirectory.Read(dir));
    }

    [Fact]
    public void A_directory_that_existed_with_wider_permissions_is_made_owner_only()
    {
        var dir = Path.Combine(_root, "wide");
        Directory.CreateDirectory(dir);
        File.SetUnixFileMode(dir, (UnixFileMode)0b111_101_101);

        AgentDataDirectory.Write(dir, Identity(), [1]);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(dir));
    }

    [Fact]
    public void An_identity_others_can_read_is_refused()
    {
        var dir = Path.Combine(_root, "loose");
        AgentDataDirectory.Write(dir, Identity(), [1]);
        File.SetUnixFileMode(Path.Combine(dir, AgentDataDirectory.IdentityFile), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);

        var refused = Assert.Throws<AgentSetupException>(() => AgentDataDirectory.Read(dir));
        Assert.Contains("chmod 600", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_or_readable_certificate_is_refused()
    {
        var dir = Path.Combine(_root, "cert");
        AgentDataDirectory.Write(dir, Identity(), [1]);
        var certificate = Path.Combine(dir, AgentDataDirectory.CertificateFile);

        File.SetUnixFileMode(certificate, UnixFileMode.UserRead | UnixFileMode.GroupRead);
        Assert.Contains("private key", Assert.Throws<AgentSetupException>(() => AgentDataDirectory.Read(dir)).Message, StringComparison.Ordinal);

        File.Delete(certificate);
        Assert.Contains("is missing", Assert.Throws<AgentSetupException>(() => AgentDataDirectory.Read(dir)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_or_damaged_identity_is_a_clear_refusal()
    {
        Assert.Contains("has not joined", Assert.Throws<AgentSetupException>(() => AgentDataDirectory.Read(Path.Combine(_root, "none"))).Message, StringComparison.Ordinal);

        var dir = Path.Combine(_root, "damaged");
        AgentDataDirectory.Write(dir, Identity(), [1]);
        File.WriteAllText(Path.Combine(dir, AgentDataDirectory.IdentityFile), "{\"machine_id\":");
        Assert.Contains("not an agent identity", Assert.Throws<AgentSetupException>(() => AgentDataDirectory.Read(dir)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_default_directory_is_the_environment_then_var_lib_when_writable_then_home()
    {
        string? Env(string name) => name switch { "HOME" => "/home/op", _ => null };

        Assert.Equal("/srv/agent", AgentDataDirectory.Default(n => n == AgentDataDirectory.EnvironmentVariable ? "/srv/agent" : null, _ => true));
        Assert.Equal("/var/lib/sluice-agent", AgentDataDirectory.Default(Env, d => d == "/var/lib/sluice-agent"));
        Assert.Equal("/home/op/.local/share/sluice-agent", AgentDataDirectory.Default(Env, _ => false));
    }

    [Fact]
    public void The_serving_certificate_is_a_one_year_P256_server_certificate_for_the_advertised_host()
    {
        var now = new DateTimeOffset(2026, 11, 28, 8, 0, 0, TimeSpan.Zero);
        using var certificate = ServingCertificate.Create("10.0.0.7", now);
        using var dnsNamed = ServingCertificate.Create("gpu-7.example.com", now);

        using var key = certificate.GetECDsaPrivateKey()!;
        Assert.Equal(256, key.KeySize);
        Assert.Equal("1.2.840.10045.3.1.7", key.ExportParameters(false).Curve.Oid.Value); // P-256
        Assert.Equal(now.AddDays(365).UtcDateTime, certificate.NotAfter.ToUniversalTime());
        Assert.True(certificate.NotBefore.ToUniversalTime() <= now.UtcDateTime);
        Assert.Contains("1.3.6.1.5.5.7.3.1", certificate.Extensions.OfType<X509EnhancedKeyUsageExtension>().Single().EnhancedKeyUsages.Cast<System.Security.Cryptography.Oid>().Select(o => o.Value));
        Assert.False(certificate.Extensions.OfType<X509BasicConstraintsExtension>().Single().CertificateAuthority);
        var san = certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        Assert.Contains(System.Net.IPAddress.Parse("10.0.0.7"), san.EnumerateIPAddresses());
        Assert.Contains("gpu-7.example.com", dnsNamed.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single().EnumerateDnsNames());

        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(certificate.RawData)), ServingCertificate.Fingerprint(certificate));
        using var reloaded = X509CertificateLoader.LoadPkcs12(ServingCertificate.ExportPkcs12(certificate), null);
        Assert.True(reloaded.HasPrivateKey);
        Assert.Equal(ServingCertificate.Fingerprint(certificate), ServingCertificate.Fingerprint(reloaded));
    }

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }
}
