using System.CommandLine;
using Microsoft.EntityFrameworkCore;
using Sluice.Hosting;
using Sluice.Identity;
using Sluice.Storage;

namespace Sluice.Cli;

/// <summary><c>sluice orgs create|list</c>: organizations, for operators working on the server.</summary>
internal static class OrgsCommand
{
    public static Command Create()
    {
        var command = new Command("orgs", "Create and list organizations, directly against the database.");
        command.Subcommands.Add(CreateCommand());
        command.Subcommands.Add(ListCommand());
        return command;
    }

    private static Command CreateCommand()
    {
        var name = new Option<string>("--name") { Description = "The organization's name.", Required = true };
        var owner = new Option<string?>("--owner") { Description = "Email of an existing account to make its owner." };
        var billingEmail = new Option<string?>("--billing-email") { Description = "Billing contact email." };
        var command = new Command("create", "Create an organization.") { name, owner, billingEmail };
        command.RunsOnHost(async (parse, services, ct) =>
        {
            Guid? ownerId = null;
            if (parse.GetValue(owner) is { } ownerEmail)
            {
                var email = User.NormalizeEmail(ownerEmail);
                ownerId = await services.GetRequiredService<SluiceDbContext>().Users.Where(u => u.Email == email).Select(u => (Guid?)u.Id).SingleOrDefaultAsync(ct)
                    ?? throw ApiProblem.Invalid("owner", "no account has this email; the person must sign up first");
            }

            var organization = await services.GetRequiredService<OrganizationService>()
                .CreateAsync(new CreateOrganizationRequest(parse.GetValue(name), parse.GetValue(billingEmail)), ownerId, ct);
            await Console.Out.WriteLineAsync($"Created organization {organization.Id} ({organization.Name}).");
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command ListCommand()
    {
        var command = new Command("list", "List every organization.");
        command.RunsOnHost(async (parse, services, ct) =>
        {
            var organizations = await services.GetRequiredService<OrganizationService>().ListAllAsync(ct);
            await Console.Out.WriteLineAsync($"{"ID",-36}  {"CREATED",-20}  NAME");
            foreach (var organization in organizations)
            {
                await Console.Out.WriteLineAsync($"{organization.Id,-36}  {organization.CreatedAt.UtcDateTime,-20:yyyy-MM-dd HH:mm:ss}  {organization.Name}");
            }

            return ExitCodes.Success;
        });
        return command;
    }
}
