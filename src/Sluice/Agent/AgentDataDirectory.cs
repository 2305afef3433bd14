using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sluice.Agent;

/// <summary>
/// The agent's data directory (owner-only, 0700): <c>agent.json</c> (the <see cref="AgentIdentity"/>, 0600) and the
/// serving certificate with its private key (<c>serving.p12</c>, 0600). Written only by a join that succeeded.
/// </summary>
public static partial class AgentDataDirectory
{
    public const string EnvironmentVariable = "SLUICE_AGENT_DATA_DIR";
    public const string SystemDirectory = "/var/lib/sluice-agent";
    public const string IdentityFile = "agent.json";
    public const string CertificateFile = "serving.p12";

    private const UnixFileMode OwnerOnlyDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode OwnerOnlyFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>$SLUICE_AGENT_DATA_DIR, else /var/lib/sluice-agent when this user may write there, else ~/.local/share/sluice-agent.</summary>
    public static string Default(Func<string, string?>? environment = null, Func<string, bool>? writable = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        writable ??= IsWritable;
        if (environment(EnvironmentVariable) is { Length: > 0 } configured)
        {
            return Path.GetFullPath(configured);
        }

        if (writable(SystemDirectory))
        {
            return SystemDirectory;
        }

        var home = environment("HOME") is { Length: > 0 } h ? h : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return Path.Combine(home, ".local", "share", "sluice-agent");
    }

    public static string IdentityPath(string dataDir) => Path.Combine(dataDir, IdentityFile);

    public static bool HasIdentity(string dataDir) => File.Exists(IdentityPath(dataDir));

    /// <summary>
    /// Writes the certificate, then the identity (the file that says "joined"), each under a temporary name moved into
    /// place, so a reader never sees half a file and a failure leaves no identity behind.
    /// </summary>
    public static void Write(string dataDir, AgentIdentity identity, byte[] certificatePkcs12)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(dataDir);
        }
        else
        {
            Directory.CreateDirectory(dataDir, OwnerOnlyDirectory);
            File.SetUnixFileMode(dataDir, OwnerOnlyDirectory); // it may have existed with wider permissions
        }

        var certificatePath = Path.Combine(dataDir, identity.CertificateFile);
        WriteOwnerOnly(certificatePath, certificatePkcs12);
        try
        {
            WriteOwnerOnly(IdentityPath(dataDir), JsonSerializer.SerializeToUtf8Bytes(identity, AgentJson.Default.AgentIdentity));
        }
        catch
        {
            File.Delete(certificatePath);
            throw;
        }
    }

    /// <summary>The identity, or an <see cref="AgentSetupException"/> saying what is wrong with the data directory.</summary>
    public static AgentIdentity Read(string dataDir)
    {
        var path = IdentityPath(dataDir);
        if (!File.Exists(path))
        {
            throw new AgentSetupException($"this machine has not joined: there is no {IdentityFile} in {dataDir}. Run `sluice agent join --server URL --token TOKEN` first (or give --data-dir).");
        }

        if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & ~OwnerOnlyFile) != 0)
        {
            throw new AgentSetupException($"{path} holds the machine's credential and may be read by other users; make it owner-only (chmod 600 {path}).");
        }

        AgentIdentity? identity;
        try
        {
            identity = JsonSerializer.Deserialize(File.ReadAllBytes(path), AgentJson.Default.AgentIdentity);
        }
        catch (JsonException)
        {
            identity = null;
        }

        if (identity is null || identity.MachineId.Length == 0 || identity.Credential.Length == 0)
        {
            throw new AgentSetupException($"{path} is not an agent identity (damaged?). Join again with `sluice agent join --force`.");
        }

        var certificate = Path.Combine(dataDir, Path.GetFileName(identity.CertificateFile));
        if (!File.Exists(certificate))
        {
            throw new AgentSetupException($"the serving certificate {certificate} is missing; join again with `sluice agent join --force`.");
        }

        if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(certificate) & ~OwnerOnlyFile) != 0)
        {
            throw new AgentSetupException($"{certificate} holds the serving certificate's private key and may be read by other users; make it owner-only (chmod 600 {certificate}).");
        }

        return identity;
    }

    private static void WriteOwnerOnly(string path, byte[] content)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = OwnerOnlyFile;
        }

        var temporary = Path.Combine(Path.GetDirectoryName(path)!, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temporary, options))
            {
                stream.Write(content);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    private static bool IsWritable(string directory)
    {
        if (OperatingSystem.IsWindows())
        {
            return false;
        }

        // The directory itself when it exists, else its parent (where join would create it).
        var target = Directory.Exists(directory) ? directory : Path.GetDirectoryName(directory)!;
        return Directory.Exists(target) && Native.Access(target, Native.WriteOk) == 0;
    }

    private static partial class Native
    {
        public const int WriteOk = 2;

        [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "access", StringMarshalling = System.Runtime.InteropServices.StringMarshalling.Utf8)]
        public static partial int Access(string path, int mode);
    }
}

/// <summary>A problem with the agent's setup, said in one line for an <c>error:</c> message.</summary>
public sealed class AgentSetupException(string message) : Exception(message);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web,
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    WriteIndented = true)]
[JsonSerializable(typeof(AgentIdentity))]
internal sealed partial class AgentJson : JsonSerializerContext;
