namespace Sluice.Agent;

/// <summary>
/// What `sluice agent join` writes to the agent's data directory (an owner-only file) and `sluice agent run` reads:
/// the machine's credential for the server, the hash of the gateway's serving token, and the serving certificate
/// whose fingerprint the server pinned at join.
/// </summary>
public sealed record AgentIdentity
{
    public required string ServerUrl { get; init; }
    public required string MachineId { get; init; }
    public required string Credential { get; init; }

    /// <summary>Lower-case hex SHA-256 of the serving token; the token itself is not kept on the machine.</summary>
    public required string ServingTokenSha256 { get; init; }

    /// <summary>Where the serving endpoint listens, e.g. <c>https://0.0.0.0:8443</c>; advertised as ServingUrl.</summary>
    public required string ServingListenUrl { get; init; }
    public required string ServingUrl { get; init; }

    /// <summary>File name (in the data directory) of the serving certificate with its private key (PKCS#12, owner-only).</summary>
    public required string CertificateFile { get; init; }
    public required string CertificateSha256 { get; init; }

    /// <summary>
    /// The directory whose model files the agent reports (deployments' <c>path</c> artifacts); null means
    /// <c>{data dir}/models</c>. Given at join with <c>--models-dir</c>.
    /// </summary>
    public string? ModelsDirectory { get; init; }

    public const string DefaultModelsDirectoryName = "models";

    /// <summary>The models directory in force: <paramref name="overrideDirectory"/>, else the one given at join, else <c>{data dir}/models</c>.</summary>
    public string ModelsDirectoryFor(string dataDir, string? overrideDirectory = null) =>
        Path.GetFullPath(overrideDirectory is { Length: > 0 } given ? given : ModelsDirectory ?? Path.Combine(dataDir, DefaultModelsDirectoryName));
}
