using System.CommandLine;
using Microsoft.EntityFrameworkCore;
using Sluice.Hosting;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.Cli;

/// <summary><c>sluice keys create|list|revoke|rotate</c>: API keys, for operators working on the server.</summary>
internal static class KeysCommand
{
    // The operator at the server's console acts with an owner's rights over keys.
    private static readonly Caller ServerConsole = new(null, true, null, null, KeyScopes.None);

    public static Command Create()
    {
        var command = new Command("keys", "Create, list, revoke and rotate API keys, directly against the database.");
        command.Subcommands.Add(CreateCommand());
        command.Subcommands.Add(ListCommand());
        command.Subcommands.Add(RevokeCommand());
        command.Subcommands.Add(RotateCommand());
        return command;
    }

    private static Option<Guid> OrgOption() => new("--org") { Description = "The organization's id.", Required = true };

    private static Argument<Guid> KeyArgument() => new("key-id") { Description = "The key's id (not its secret)." };

    private static Command CreateCommand()
    {
        var org = OrgOption();
        var name = new Option<string>("--name") { Description = "A name to recognise the key by.", Required = true };
        var scopes = new Option<string[]>("--scope") { Description = $"Repeatable: {string.Join(", ", KeyScopeNames.All)} (default: inference, batch)." };
        var models = new Option<string[]>("--model") { Description = "Repeatable: a model id the key may use (default: every model)." };
        var expires = new Option<DateTimeOffset?>("--expires") { Description = "Expiry time, e.g. 2027-01-31T00:00:00Z." };
        var rpm = new Option<int?>("--rpm") { Description = "Requests per minute limit." };
        var tpm = new Option<int?>("--tpm") { Description = "Tokens per minute limit." };
        var command = new Command("create", "Create a key and print its secret, once.") { org, name, scopes, models, expires, rpm, tpm };
        command.RunsOnHost(async (parse, services, ct) =>
        {
            var orgId = parse.GetValue(org);
            await EnsureOrganizationAsync(services, orgId, ct);
            var request = new CreateKeyRequest(
                parse.GetValue(name),
                parse.GetValue(scopes) is { Length: > 0 } s ? s : null,
                parse.GetValue(models) is { Length: > 0 } m ? m : null,
                parse.GetValue(expires),
                null,
                parse.GetValue(rpm),
                parse.GetValue(tpm));
            var created = await services.GetRequiredService<ApiKeyService>().CreateAsync(orgId, request, null, ct);
            await Console.Out.WriteLineAsync($"Created key {created.Details.Id} ({created.Details.Name}). Its secret, shown once:");
            await Console.Out.WriteLineAsync(created.Key);
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command ListCommand()
    {
        var org = OrgOption();
        var command = new Command("list", "List an organization's keys (never their secrets).") { org };
        command.RunsOnHost(async (parse, services, ct) =>
        {
            var orgId = parse.GetValue(org);
            await EnsureOrganizationAsync(services, orgId, ct);
            var keys = await services.GetRequiredService<ApiKeyService>().ListAsync(orgId, ct);
            await Console.Out.WriteLineAsync($"{"ID",-36}  {"PREFIX",-18}  {"STATE",-8}  {"SCOPES",-40}  NAME");
            foreach (var key in keys)
            {
                var state = key.RevokedAt is not null ? "revoked" : key.ExpiresAt <= DateTimeOffset.UtcNow ? "expired" : "active";
                await Console.Out.WriteLineAsync($"{key.Id,-36}  {key.Prefix,-18}  {state,-8}  {string.Join(",", key.Scopes),-40}  {key.Name}");
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static Command RevokeCommand()
    {
        var keyId = KeyArgument();
        var command = new Command("revoke", "Revoke a key at once, on every replica within two seconds.") { keyId };
        command.RunsOnHost(async (parse, services, ct) =>
        {
            var id = parse.GetValue(keyId);
            var key = await services.GetRequiredService<ApiKeyService>().RevokeAsync(await OrganizationOfAsync(services, id, ct), id, ServerConsole, OrgRole.Owner, ct);
            await Console.Out.WriteLineAsync($"Revoked key {key.Id} ({key.Name}).");
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command RotateCommand()
    {
        var keyId = KeyArgument();
        var grace = new Option<int?>("--grace-seconds") { Description = "How long the old secret keeps working (default: Identity:KeyRotationGracePeriod)." };
        var command = new Command("rotate", "Issue a new secret for a key, keeping its id; print the new secret once.") { keyId, grace };
        command.RunsOnHost(async (parse, services, ct) =>
        {
            var id = parse.GetValue(keyId);
            var rotated = await services.GetRequiredService<ApiKeyService>()
                .RotateAsync(await OrganizationOfAsync(services, id, ct), id, new RotateKeyRequest(parse.GetValue(grace)), ServerConsole, OrgRole.Owner, ct);
            var until = rotated.Details.PreviousSecretValidUntil is { } t ? $"until {t.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z" : "no longer";
            await Console.Out.WriteLineAsync($"Rotated key {rotated.Details.Id}; the old secret works {until}. The new secret, shown once:");
            await Console.Out.WriteLineAsync(rotated.Key);
            return ExitCodes.Success;
        });
        return command;
    }

    private static async Task EnsureOrganizationAsync(IServiceProvider services, Guid orgId, CancellationToken ct)
    {
        if (!await services.GetRequiredService<SluiceDbContext>().Organizations.AnyAsync(o => o.Id == orgId, ct))
        {
            throw ApiProblem.NotFound("organization");
        }
    }

    private static async Task<Guid> OrganizationOfAsync(IServiceProvider services, Guid keyId, CancellationToken ct) =>
        await services.GetRequiredService<SluiceDbContext>().ApiKeys.Where(k => k.Id == keyId).Select(k => (Guid?)k.OrganizationId).SingleOrDefaultAsync(ct)
        ?? throw ApiProblem.NotFound("API key");
}
