using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Sluice.Files;
using Sluice.Gateway;
using Sluice.Identity;

namespace Sluice.WebConsole.Pages.Files;

/// <summary>
/// The organization's files: metadata only (never the bytes), upload through the same checks and encryption as
/// <c>/v1/files</c>, download decrypted on the fly, delete (crypto-shredding). Who may use <c>/v1/files</c> with a key
/// (a role that grants keys) may use this page.
/// </summary>
[OrgPermission(OrgAccess.KeysWrite)]
[RequestFormLimits(MultipartBodyLengthLimit = MaxConsoleUpload, MemoryBufferThreshold = (int)MaxConsoleUpload)]
[RequestSizeLimit(MaxConsoleUpload + (1024 * 1024))]
public sealed class FilesModel(FileUploads uploads, FileStore store, TimeProvider time) : OrgPage
{
    /// <summary>
    /// The console's upload ceiling: the form is read in memory (so the plaintext never touches a temporary file on
    /// disk) before it is encrypted, so it is bounded; larger files go through <c>/v1/files</c>, which streams.
    /// </summary>
    public const long MaxConsoleUpload = 64L * 1024 * 1024;

    public override string Title => "Files";

    public IReadOnlyList<StoredFile> Files { get; private set; } = [];

    public long MaxBytes => Math.Min(uploads.MaxFileBytes, MaxConsoleUpload);

    [BindProperty]
    public IFormFile? Upload { get; set; }

    [BindProperty]
    public string? Purpose { get; set; } = "batch";

    [BindProperty(SupportsGet = true, Name = "done")]
    public string? Done { get; set; }

    public async Task OnGetAsync()
    {
        Notice = Done switch
        {
            "uploaded" => "File uploaded and encrypted.",
            "deleted" => "File deleted: its key was destroyed, so its bytes can no longer be read.",
            _ => null,
        };
        await LoadAsync();
    }

    public async Task<IActionResult> OnPostUploadAsync()
    {
        if (!Can(OrgAccess.KeysWrite))
        {
            return Denied();
        }

        if (Upload is null || Upload.Length == 0)
        {
            ModelState.AddModelError(nameof(Upload), "Choose a file to upload.");
        }
        else if (Upload.Length > MaxBytes)
        {
            ModelState.AddModelError(nameof(Upload), $"The file is larger than the limit of {ConsoleFormat.Bytes(MaxBytes)}.");
        }
        else
        {
            try
            {
                await using var content = Upload.OpenReadStream();
                await uploads.UploadAsync(OrgId, null, Upload.FileName, Purpose, content, HttpContext.RequestAborted);
                return Redirect(OrgPath("/files?done=uploaded"));
            }
            catch (OpenAiException refused) when (refused.Status is 400 or 403 or 413)
            {
                ModelState.AddModelError(refused.Param switch { "purpose" => nameof(Purpose), "file" => nameof(Upload), _ => string.Empty }, refused.Message);
            }
        }

        await LoadAsync();
        return Page();
    }

    public async Task<IActionResult> OnPostDeleteAsync(string? id)
    {
        if (!Can(OrgAccess.KeysWrite))
        {
            return Denied();
        }

        var file = await FindAsync(id);
        if (file is null)
        {
            return Missing();
        }

        await uploads.DeleteAsync(file, HttpContext.RequestAborted);
        return Redirect(OrgPath("/files?done=deleted"));
    }

    /// <summary>The file's bytes, decrypted chunk by chunk into the response, as <c>/v1/files/{id}/content</c> does.</summary>
    public async Task<IActionResult> OnGetContentAsync(string? id)
    {
        var file = await FindAsync(id);
        if (file is null || !store.Exists(file.Id))
        {
            return Missing();
        }

        var type = file.Purpose is "batch" or "batch_output" ? "application/jsonl" : "application/octet-stream";
        return File(store.OpenRead(file.Id, file.OrganizationId), type, file.Filename);
    }

    public string ContentLink(StoredFile file) => OrgPath($"/files?handler=Content&id={file.PublicId}");

    private async Task<StoredFile?> FindAsync(string? id)
    {
        var now = time.GetUtcNow();
        return StoredFile.TryParseId(id, out var fileId)
            ? await Db.Files.FirstOrDefaultAsync(f => f.Id == fileId && f.OrganizationId == OrgId && f.ExpiresAt > now, HttpContext.RequestAborted)
            : null;
    }

    private async Task LoadAsync()
    {
        var now = time.GetUtcNow();
        Files = await Db.Files.AsNoTracking().Where(f => f.OrganizationId == OrgId && f.ExpiresAt > now)
            .OrderByDescending(f => f.Id).Take(200).ToListAsync(HttpContext.RequestAborted);
    }
}
