using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Sluice.Batches;
using Sluice.Files;
using Sluice.Gateway;
using Sluice.Hosting;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages.Batches;

/// <summary>
/// The organization's batches: status, counts and tokens; create one from an uploaded batch file (it runs under one of
/// the organization's API keys, whose models and limits apply); cancel; download the output and error files.
/// </summary>
[OrgPermission(OrgAccess.KeysWrite)]
public sealed class BatchesModel(BatchCommands commands, TimeProvider time) : OrgPage
{
    public override string Title => "Batches";

    public IReadOnlyList<Batch> Batches { get; private set; } = [];

    /// <summary>Batch files that can be a batch's input, newest first.</summary>
    public IReadOnlyList<StoredFile> InputFiles { get; private set; } = [];

    /// <summary>Keys a batch may run under: active, not expired, allowed to make inference calls.</summary>
    public IReadOnlyList<ApiKey> Keys { get; private set; } = [];

    public IReadOnlyList<string> Endpoints => BatchesEndpoints.SupportedEndpoints;

    [BindProperty]
    public string? InputFileId { get; set; }

    [BindProperty]
    public string? Endpoint { get; set; } = "/v1/chat/completions";

    [BindProperty]
    public string? CompletionWindow { get; set; } = "24h";

    [BindProperty]
    public string? KeyId { get; set; }

    [BindProperty(SupportsGet = true, Name = "done")]
    public string? Done { get; set; }

    public async Task OnGetAsync()
    {
        Notice = Done switch
        {
            "created" => "Batch created: it starts within a few seconds. Reload the page to follow it.",
            "cancelled" => "Batch cancelling: requests already sent finish; the rest are not run.",
            _ => null,
        };
        await LoadAsync();
    }

    public async Task<IActionResult> OnPostCreateAsync()
    {
        if (!Can(OrgAccess.KeysWrite))
        {
            return Denied();
        }

        await LoadAsync();
        if (Endpoint is null || !Endpoints.Contains(Endpoint))
        {
            ModelState.AddModelError(nameof(Endpoint), $"Choose one of: {string.Join(", ", Endpoints)}.");
        }

        if (CompletionWindow != "24h")
        {
            ModelState.AddModelError(nameof(CompletionWindow), "The completion window must be 24h.");
        }

        var key = Guid.TryParse(KeyId, out var keyId) ? Keys.FirstOrDefault(k => k.Id == keyId) : null;
        if (key is null)
        {
            ModelState.AddModelError(nameof(KeyId), "Choose an active API key of this organization to run the batch under.");
        }

        if (string.IsNullOrEmpty(InputFileId))
        {
            ModelState.AddModelError(nameof(InputFileId), "Choose a batch file (upload one on the Files page).");
        }

        if (!ModelState.IsValid)
        {
            return Page();
        }

        try
        {
            await commands.CreateAsync(OrgId, key!.Id, InputFileId, Endpoint!, null, null, HttpContext.RequestAborted);
            return Redirect(OrgPath("/batches?done=created"));
        }
        catch (OpenAiException refused) when (refused.Status is 400 or 404)
        {
            ModelState.AddModelError(refused.Param == "input_file_id" ? nameof(InputFileId) : string.Empty, refused.Message);
            return Page();
        }
    }

    public async Task<IActionResult> OnPostCancelAsync(string? id)
    {
        if (!Can(OrgAccess.KeysWrite))
        {
            return Denied();
        }

        if (!Batch.TryParseId(id, out var batchId)
            || await Db.Batches.AsNoTracking().FirstOrDefaultAsync(b => b.Id == batchId && b.OrganizationId == OrgId, HttpContext.RequestAborted) is not { } batch)
        {
            return Missing();
        }

        try
        {
            await commands.CancelAsync(batch, HttpContext.RequestAborted);
        }
        catch (OpenAiException refused) when (refused.Status == StatusCodes.Status409Conflict)
        {
            ModelState.AddModelError(string.Empty, refused.Message);
            await LoadAsync();
            return Page();
        }

        return Redirect(OrgPath("/batches?done=cancelled"));
    }

    public static bool Cancellable(Batch batch) => batch.Status is Batch.Validating or Batch.InProgress;

    public string FileLink(Guid fileId) => OrgPath($"/files?handler=Content&id={PublicId.Format(StoredFile.IdPrefix, fileId)}");

    public string InputName(Batch batch) => InputFiles.FirstOrDefault(f => f.Id == batch.InputFileId)?.Filename ?? PublicId.Format(StoredFile.IdPrefix, batch.InputFileId);

    private async Task LoadAsync()
    {
        var ct = HttpContext.RequestAborted;
        var now = time.GetUtcNow();
        Batches = await Db.Batches.AsNoTracking().Where(b => b.OrganizationId == OrgId).OrderByDescending(b => b.Id).Take(100).ToListAsync(ct);
        InputFiles = await Db.Files.AsNoTracking().Where(f => f.OrganizationId == OrgId && f.Purpose == "batch" && f.ExpiresAt > now)
            .OrderByDescending(f => f.Id).Take(200).ToListAsync(ct);
        var keys = await Db.ApiKeys.AsNoTracking().Where(k => k.OrganizationId == OrgId && k.RevokedAt == null).OrderBy(k => k.Name).ToListAsync(ct);
        Keys = [.. keys.Where(k => (k.ExpiresAt is null || k.ExpiresAt > now) && (k.Scopes & (KeyScopes.Inference | KeyScopes.Batch)) != 0)];
    }
}
