using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Agent.Machine;
using Sluice.Cli;
using Sluice.Compute.Protocol;

namespace Sluice.Agent;

public sealed record JoinArguments
{
    public required string Server { get; init; }
    public required string Token { get; init; }
    public required string DataDir { get; init; }
    public string Listen { get; init; } = "https://0.0.0.0:8443";
    public string? Advertise { get; init; }
    public IReadOnlyList<string> Labels { get; init; } = [];
    public bool Force { get; init; }

    /// <summary>The directory whose model files the agent reports; null: <c>{data dir}/models</c>.</summary>
    public string? ModelsDir { get; init; }
}

/// <summary>
/// `sluice agent join`: checks everything it was given, generates the serving certificate, collects the inventory,
/// exchanges the join token for the machine's identity, and only then writes the data directory. A refusal or failure
/// leaves the data directory as it was.
/// </summary>
internal static partial class AgentJoin
{
    public static async Task<int> RunAsync(JoinArguments arguments, TextWriter output, TextWriter error, TimeProvider time, CancellationToken cancellationToken)
    {
        if (Validate(arguments, out var server, out var listen, out var advertised, out var labels) is { } usage)
        {
            await error.WriteLineAsync($"error: {usage}");
            return ExitCodes.Usage;
        }

        var dataDir = Path.GetFullPath(arguments.DataDir);
        if (AgentDataDirectory.HasIdentity(dataDir) && !arguments.Force)
        {
            await error.WriteLineAsync($"error: this machine has already joined (an identity is in {dataDir}); give --force to join again and replace it (the old identity stops being used here; revoke it on the server).");
            return ExitCodes.Failure;
        }

        using var certificate = ServingCertificate.Create(advertised.Host, time.GetUtcNow());
        var fingerprint = ServingCertificate.Fingerprint(certificate);
        var modelsDir = arguments.ModelsDir is { Length: > 0 } given ? Path.GetFullPath(given) : null;
        var probe = new MachineProbe(new MachineProbeSources { DiskPath = dataDir, ModelsDirectory = modelsDir ?? Path.Combine(dataDir, AgentIdentity.DefaultModelsDirectoryName) }, time, NullLogger.Instance);
        var (inventory, _) = await probe.SampleAsync(cancellationToken);

        using var client = new ControlClient(server!, TimeSpan.FromSeconds(60));
        var result = await client.JoinAsync(new JoinRequest
        {
            Token = arguments.Token,
            Hostname = Dns.GetHostName(),
            AgentVersion = ControlClient.AgentVersion,
            Inventory = inventory,
            ServingUrl = advertised.GetLeftPart(UriPartial.Authority),
            CertificateSha256 = fingerprint,
            Labels = labels.Count == 0 ? null : labels,
        }, cancellationToken);

        if (result.Outcome != ControlOutcome.Ok)
        {
            var prefix = result.Outcome == ControlOutcome.Unavailable ? $"could not join through {server!.GetLeftPart(UriPartial.Authority)}: " : "the server refused the join: ";
            await error.WriteLineAsync($"error: {prefix}{result.Detail}");
            return ExitCodes.Failure;
        }

        var joined = result.Value!;
        var identity = new AgentIdentity
        {
            ServerUrl = server!.ToString().TrimEnd('/'),
            MachineId = joined.MachineId,
            Credential = joined.Credential,
            ServingTokenSha256 = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(joined.ServingToken))),
            ServingListenUrl = listen.GetLeftPart(UriPartial.Authority),
            ServingUrl = advertised.GetLeftPart(UriPartial.Authority),
            CertificateFile = AgentDataDirectory.CertificateFile,
            CertificateSha256 = fingerprint,
            ModelsDirectory = modelsDir,
        };
        try
        {
            AgentDataDirectory.Write(dataDir, identity, ServingCertificate.ExportPkcs12(certificate));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await error.WriteLineAsync($"error: the server registered machine {joined.MachineId} but its identity could not be written to {dataDir} ({ex.GetType().Name}); fix the directory, revoke that machine on the server, and join again with a new token.");
            return ExitCodes.Failure;
        }

        var owner = joined.OrganizationId is { } org ? $"organization {org}'s private fleet" : "the platform pool";
        await output.WriteLineAsync($"Joined {owner} as machine {joined.MachineId}; identity written to {dataDir}.");
        await output.WriteLineAsync($"Serving URL {identity.ServingUrl} (certificate sha256 {fingerprint}). Start the agent with: sluice agent run --data-dir {dataDir}");
        return ExitCodes.Success;
    }

    /// <summary>Why the arguments cannot be used (one line), or null.</summary>
    public static string? Validate(JoinArguments arguments, out Uri? server, out Uri listen, out Uri advertised, out Dictionary<string, string> labels)
    {
        listen = advertised = null!;
        labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (ControlClient.Refusal(arguments.Server, out server) is { } refused)
        {
            return refused;
        }

        if (arguments.Token.Length == 0)
        {
            return "a join token is required: give --token TOKEN (or set SLUICE_AGENT_JOIN_TOKEN).";
        }

        if (arguments.Token.Length > 512 || arguments.Token.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            return "--token must be the join token exactly as it was shown (no spaces).";
        }

        if (!Uri.TryCreate(arguments.Listen.Replace("://*", "://0.0.0.0", StringComparison.Ordinal).Replace("://+", "://0.0.0.0", StringComparison.Ordinal), UriKind.Absolute, out var parsedListen)
            || parsedListen.Scheme != Uri.UriSchemeHttps || parsedListen.AbsolutePath != "/" || parsedListen.UserInfo.Length > 0)
        {
            return $"--listen must be https://ADDRESS:PORT, e.g. https://0.0.0.0:8443 (the serving endpoint is HTTPS only).";
        }

        listen = parsedListen;
        if (arguments.Advertise is { } given)
        {
            if (!Uri.TryCreate(given, UriKind.Absolute, out var parsedAdvertise) || parsedAdvertise.Scheme != Uri.UriSchemeHttps
                || parsedAdvertise.AbsolutePath != "/" || parsedAdvertise.UserInfo.Length > 0 || IsAnyAddress(parsedAdvertise.DnsSafeHost))
            {
                return "--advertise must be https://HOST:PORT, the address at which the gateway reaches this machine (not 0.0.0.0).";
            }

            advertised = parsedAdvertise;
        }
        else
        {
            var host = IsAnyAddress(listen.DnsSafeHost) ? Dns.GetHostName() : listen.Host;
            advertised = new UriBuilder(Uri.UriSchemeHttps, host, listen.Port).Uri;
        }

        foreach (var pair in arguments.Labels)
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                return $"--label expects key=value, got '{pair}'.";
            }

            if (!labels.TryAdd(pair[..equals], pair[(equals + 1)..]))
            {
                return $"--label {pair[..equals]} is given twice.";
            }
        }

        // The server's own rules, so a label it would refuse is caught before the token is spent.
        var errors = new Hosting.FieldErrors();
        Compute.ProtocolValidation.Labels(errors, "labels", labels);
        return errors.Any ? $"--label: {errors.FirstMessage()}." : null;
    }

    private static bool IsAnyAddress(string host) =>
        IPAddress.TryParse(host, out var address) && (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any));
}
