using Microsoft.AspNetCore.Mvc;
using Sluice.Deployments;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages.Deployments;

/// <summary>
/// Creates a deployment with the fields <c>POST /api/v1/deployments</c> takes. Secrets are write-only: they are sent once
/// and never rendered again, not even after a refusal (the person types them again).
/// </summary>
[OrgPermission(OrgAccess.OrgWrite)]
public sealed class NewDeploymentModel(DeploymentAdmin deployments) : OrgPage
{
    public override string Title => "New deployment";

    [BindProperty]
    public string? Name { get; set; }

    [BindProperty]
    public string? Description { get; set; }

    [BindProperty]
    public string? Engine { get; set; } = DeploymentEngines.BuiltInLlama;

    [BindProperty]
    public string? ArtifactKind { get; set; }

    [BindProperty]
    public string? Artifact { get; set; }

    [BindProperty]
    public string? GpuType { get; set; }

    [BindProperty]
    public int? GpusPerReplica { get; set; } = 1;

    [BindProperty]
    public int? MinReplicas { get; set; } = 1;

    [BindProperty]
    public int? MaxReplicas { get; set; } = 1;

    [BindProperty]
    public int? TargetConcurrency { get; set; } = DeploymentAdmin.DefaultTargetConcurrency;

    [BindProperty]
    public int? IdleTimeoutSeconds { get; set; } = DeploymentAdmin.DefaultIdleTimeoutSeconds;

    [BindProperty]
    public int? ScaleDownDelaySeconds { get; set; } = DeploymentAdmin.DefaultScaleDownDelaySeconds;

    [BindProperty]
    public string? Runtime { get; set; }

    /// <summary>One engine argument per line.</summary>
    [BindProperty]
    public string? EngineArgs { get; set; }

    /// <summary>NAME=value per line; bound for the post, never rendered back.</summary>
    [BindProperty]
    public string? Secrets { get; set; }

    public IReadOnlyList<string> GpuTypes { get; private set; } = [];

    public async Task OnGetAsync() => GpuTypes = await ConsoleDeployments.GpuTypesAsync(Db, OrgId, HttpContext.RequestAborted);

    public async Task<IActionResult> OnPostAsync()
    {
        if (!Can(OrgAccess.OrgWrite))
        {
            return Denied();
        }

        var secrets = ParseSecrets();
        DeploymentView? created = null;
        if (secrets is not null)
        {
            var request = new CreateDeploymentRequest(
                OrgId, Name ?? "", Blank(Description), Engine ?? "", Blank(ArtifactKind), Blank(Artifact), Blank(GpuType), GpusPerReplica, MinReplicas, MaxReplicas,
                TargetConcurrency, IdleTimeoutSeconds, ScaleDownDelaySeconds,
                new DeploymentLaunchSettings { Runtime = Blank(Runtime), EngineArgs = Lines(EngineArgs) },
                secrets.Count == 0 ? null : secrets);
            if (await TryAsync(async () => created = await deployments.CreateAsync(DeploymentCaller.From(HttpContext), request, HttpContext.RequestAborted)))
            {
                return Redirect(OrgPath($"/deployments/{created!.Id}?done=created"));
            }
        }

        ConsoleDeployments.MoveErrors(ModelState, new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
        {
            ["launch.runtime"] = nameof(Runtime),
            ["launch.engineArgs"] = nameof(EngineArgs),
        }, [nameof(Name), nameof(Description), nameof(Engine), nameof(ArtifactKind), nameof(Artifact), nameof(GpuType), nameof(GpusPerReplica), nameof(MinReplicas),
            nameof(MaxReplicas), nameof(TargetConcurrency), nameof(IdleTimeoutSeconds), nameof(ScaleDownDelaySeconds), nameof(Runtime), nameof(EngineArgs), nameof(Secrets)]);
        if (!string.IsNullOrEmpty(Secrets))
        {
            ModelState.AddModelError(nameof(Secrets), "Secrets are never shown again: type them again.");
        }

        Secrets = null;
        GpuTypes = await ConsoleDeployments.GpuTypesAsync(Db, OrgId, HttpContext.RequestAborted);
        return Page();
    }

    /// <summary>The secrets typed, by name; null (with an error beside the field) when a line is not NAME=value or a name repeats.</summary>
    private Dictionary<string, string>? ParseSecrets()
    {
        var secrets = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in Lines(Secrets))
        {
            var equals = line.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0 || !secrets.TryAdd(line[..equals].Trim(), line[(equals + 1)..]))
            {
                ModelState.AddModelError(nameof(Secrets), "Write one secret per line as NAME=value, each name once.");
                return null;
            }
        }

        return secrets;
    }

    private static List<string> Lines(string? text) =>
        [.. (text ?? "").Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Trim().Length > 0)];

    private static string? Blank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
