using System.CommandLine;
using Sluice.Gateway;
using Sluice.Hosting;

namespace Sluice.Cli;

/// <summary><c>sluice providers …</c> and <c>sluice models …</c>: the model catalog, for operators on the server.</summary>
internal static class CatalogCommands
{
    public static Command Providers()
    {
        var command = new Command("providers", "Add, list and remove model providers (OpenAI-compatible servers, Anthropic).");

        var name = new Option<string>("--name") { Description = "A unique name, e.g. ollama or openai.", Required = true };
        var kind = new Option<string>("--kind") { Description = "openai-compatible or anthropic.", Required = true };
        kind.AcceptOnlyFromAmong("openai-compatible", "anthropic");
        var baseUrl = new Option<string?>("--base-url") { Description = "The API's base URL, e.g. http://127.0.0.1:11434/v1/ (Anthropic defaults to its public API)." };
        var apiKeyEnv = new Option<string?>("--api-key-env") { Description = "Name of an environment variable holding the upstream API key (never pass secrets as arguments)." };
        var headers = new Option<string[]>("--header") { Description = "Repeatable extra request header, Name=value." };
        var maxConcurrent = new Option<int?>("--max-concurrent-requests") { Description = "The most batch requests one replica sends it at once (default: no limit)." };
        var responses = new Option<bool>("--responses") { Description = "It speaks OpenAI's Responses API itself: /v1/responses calls go to it as they came (default: translated to chat completions)." };
        var add = new Command("add", "Add a provider; its API key is stored encrypted.") { name, kind, baseUrl, apiKeyEnv, headers, maxConcurrent, responses };
        add.RunsOnHost(async (parse, services, ct) =>
        {
            string? apiKey = null;
            if (parse.GetValue(apiKeyEnv) is { } variable)
            {
                apiKey = Environment.GetEnvironmentVariable(variable) ?? throw ApiProblem.Invalid("apiKeyEnv", $"the environment variable {variable} is not set");
            }

            var headerMap = (parse.GetValue(headers) ?? []).Select(h => h.Split('=', 2)).ToDictionary(
                p => p[0], p => p.Length > 1 ? p[1] : throw ApiProblem.Invalid("headers", "each --header is Name=value"), StringComparer.OrdinalIgnoreCase);
            var provider = await services.GetRequiredService<CatalogAdmin>().CreateProviderAsync(
                new CreateProviderRequest(parse.GetValue(name), parse.GetValue(kind), parse.GetValue(baseUrl), apiKey, headerMap, parse.GetValue(maxConcurrent), parse.GetValue(responses) ? true : null), ct);
            await Console.Out.WriteLineAsync($"Added provider {provider.Name} ({provider.Kind}, {provider.BaseUrl}){(provider.HasApiKey ? " with an encrypted API key" : "")}.");
            return ExitCodes.Success;
        });
        command.Subcommands.Add(add);

        var list = new Command("list", "List providers (never their keys).");
        list.RunsOnHost(async (parse, services, ct) =>
        {
            await Console.Out.WriteLineAsync($"{"NAME",-20}  {"KIND",-17}  {"KEY",-3}  BASE URL");
            foreach (var provider in await services.GetRequiredService<CatalogAdmin>().ProvidersAsync(ct))
            {
                await Console.Out.WriteLineAsync($"{provider.Name,-20}  {provider.Kind,-17}  {(provider.HasApiKey ? "yes" : "no"),-3}  {provider.BaseUrl}");
            }

            return ExitCodes.Success;
        });
        command.Subcommands.Add(list);

        var removeName = new Argument<string>("name") { Description = "The provider's name." };
        var remove = new Command("remove", "Remove a provider that no route uses.") { removeName };
        remove.RunsOnHost(async (parse, services, ct) =>
        {
            var admin = services.GetRequiredService<CatalogAdmin>();
            var provider = (await admin.ProvidersAsync(ct)).FirstOrDefault(p => p.Name == parse.GetValue(removeName)) ?? throw ApiProblem.NotFound("provider");
            await admin.DeleteProviderAsync(provider.Id, ct);
            await Console.Out.WriteLineAsync($"Removed provider {provider.Name}.");
            return ExitCodes.Success;
        });
        command.Subcommands.Add(remove);
        return command;
    }

    public static Command Models()
    {
        var command = new Command("models", "Add, route, list and remove the public model ids clients ask for.");

        var id = new Argument<string>("id") { Description = "The public model id, e.g. llama-3.1-8b." };
        var description = new Option<string?>("--description") { Description = "A short description shown in /v1/models." };
        var add = new Command("add", "Add a model id to the catalog.") { id, description };
        add.RunsOnHost(async (parse, services, ct) =>
        {
            var model = await services.GetRequiredService<CatalogAdmin>().CreateModelAsync(new CreateModelRequest(parse.GetValue(id), parse.GetValue(description)), ct);
            await Console.Out.WriteLineAsync($"Added model {model.Id}; give it a route with `sluice models route {model.Id} --provider …`.");
            return ExitCodes.Success;
        });
        command.Subcommands.Add(add);

        var routeModel = new Argument<string>("id") { Description = "The public model id." };
        var provider = new Option<string>("--provider") { Description = "The provider's name.", Required = true };
        var upstream = new Option<string>("--upstream-model") { Description = "The provider's own name for the model.", Required = true };
        var priority = new Option<int?>("--priority") { Description = "Lower is tried first (default 0); equal priorities share load." };
        var weight = new Option<int?>("--weight") { Description = "Share of load among equal priorities (default 1)." };
        var retains = new Option<bool>("--retains-data") { Description = "Whether the provider keeps prompts or completions (true or false).", Required = true, Arity = ArgumentArity.ExactlyOne };
        var trains = new Option<bool>("--trains-on-data") { Description = "Whether the provider may train on what it receives (true or false).", Required = true, Arity = ArgumentArity.ExactlyOne };
        var route = new Command("route", "Add a route: serve the model from a provider.") { routeModel, provider, upstream, priority, weight, retains, trains };
        route.RunsOnHost(async (parse, services, ct) =>
        {
            var created = await services.GetRequiredService<CatalogAdmin>().CreateRouteAsync(new CreateRouteRequest(
                parse.GetValue(routeModel), parse.GetValue(provider), parse.GetValue(upstream), parse.GetValue(priority), parse.GetValue(weight),
                parse.GetValue(retains), parse.GetValue(trains)), ct);
            await Console.Out.WriteLineAsync($"Route {created.Id}: {created.Model} → {created.Provider}/{created.UpstreamModel} (priority {created.Priority}, weight {created.Weight}).");
            return ExitCodes.Success;
        });
        command.Subcommands.Add(route);

        var list = new Command("list", "List models and their routes.");
        list.RunsOnHost(async (parse, services, ct) =>
        {
            foreach (var model in await services.GetRequiredService<CatalogAdmin>().ModelsAsync(ct))
            {
                await Console.Out.WriteLineAsync($"{model.Id}{(model.TestModel ? " (test model)" : "")}");
                foreach (var r in model.Routes)
                {
                    await Console.Out.WriteLineAsync($"  {r.Id}  priority {r.Priority} weight {r.Weight}  {r.Provider}/{r.UpstreamModel}  retains={r.RetainsData} trains={r.TrainsOnData}");
                }
            }

            return ExitCodes.Success;
        });
        command.Subcommands.Add(list);

        var removeId = new Argument<string>("id") { Description = "The public model id." };
        var remove = new Command("remove", "Remove a model and its routes.") { removeId };
        remove.RunsOnHost(async (parse, services, ct) =>
        {
            await services.GetRequiredService<CatalogAdmin>().DeleteModelAsync(parse.GetValue(removeId)!, ct);
            await Console.Out.WriteLineAsync($"Removed model {parse.GetValue(removeId)}.");
            return ExitCodes.Success;
        });
        command.Subcommands.Add(remove);
        return command;
    }
}
