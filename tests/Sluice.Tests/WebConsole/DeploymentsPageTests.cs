using System.Net;
using System.Net.Http.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Sluice.Compute.Protocol;
using Sluice.Deployments;
using Sluice.Deployments.Billing;
using Sluice.Storage;
using Sluice.Tests.Compute;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.WebConsole;

/// <summary>The deployments pages: list, create, detail (replicas, events, GPU time billed), scale and delete, by role.</summary>
public sealed class DeploymentsPageTests : IAsyncLifetime
{
    private ConsoleKit _kit = null!;

    public async ValueTask InitializeAsync() => _kit = await DeploymentsConsole.StartAsync();

    public async ValueTask DisposeAsync() => await _kit.DisposeAsync();

    [Fact]
    public async Task An_owner_creates_a_deployment_through_the_page_and_finds_it_listed_and_in_detail_with_its_replica_events_and_gpu_time()
    {
        var (owner, orgId) = await _kit.OwnerAsync("dep-owner@example.com");
        await DeploymentsConsole.PoolAsync(_kit, orgId);

        var list = await owner.GetAsync($"/orgs/{orgId}/deployments");
        Assert.Equal(HttpStatusCode.OK, list.Status);
        Assert.NotNull(list.Find($"main a[href='/orgs/{orgId}/deployments/new']"));
        Assert.NotNull(list.Find($"nav a[href='/orgs/{orgId}/deployments'][aria-current=page]"));

        var created = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/deployments/new"), "main form.deployment-form", DeploymentsConsole.Valid("acme-tiny"));
        Assert.True(created.Status == HttpStatusCode.Redirect, $"{(int)created.Status}: {created.FormErrors()} {created.Text()}");
        var deployment = Assert.Single(await DeploymentsConsole.DeploymentsAsync(_kit, orgId));
        Assert.Equal($"/orgs/{orgId}/deployments/{deployment.Id}?done=created", created.Location);
        Assert.Equal(("builtin-llama", DeploymentsConsole.Gguf, DeploymentsConsole.H100, 1, 1, 2), (deployment.Engine, deployment.Artifact, deployment.GpuType, deployment.GpusPerReplica, deployment.MinReplicas, deployment.MaxReplicas));
        Assert.Contains("--ctx-size", deployment.LaunchJson);

        var detail = await owner.GetAsync(created.Location!);
        Assert.Equal(HttpStatusCode.OK, detail.Status);
        Assert.Contains("Deployment created", detail.Find("p.notice")!.TextContent);
        Assert.Equal("acme-tiny", detail.Find("#model-name")!.TextContent);
        Assert.Contains("created", detail.FindAll("table.events td .badge").Select(b => b.TextContent));
        Assert.Contains("HF_TOKEN", detail.Text());
        Assert.DoesNotContain("hf_secret_value", detail.Body);

        // A replica placed on the platform pool and an hour of its GPU time charged (written as the scheduler and the meter would).
        var machineId = await DeploymentsConsole.PoolMachineAsync(_kit);
        await DeploymentsConsole.RunAndChargeAsync(_kit, deployment, machineId, costMicros: 2_500_000, seconds: 3600);

        detail = await owner.GetAsync($"/orgs/{orgId}/deployments/{deployment.Id}");
        var replica = Assert.Single(detail.FindAll("table[aria-labelledby=replicas-heading] tbody tr"));
        Assert.Contains("platform pool", replica.TextContent);
        Assert.Contains("ready", replica.TextContent);
        Assert.Contains("2.50 USD", detail.Find("ul.stats")!.TextContent);
        Assert.Contains("1 h 00 min", detail.Find("ul.stats")!.TextContent);

        list = await owner.GetAsync($"/orgs/{orgId}/deployments");
        var row = Assert.Single(list.FindAll("table.deployments tbody tr"));
        Assert.Contains("acme-tiny", row.TextContent);
        Assert.Contains("builtin-llama", row.TextContent);
        Assert.Contains($"{DeploymentsConsole.H100} × 1", row.TextContent);
        Assert.Contains("1 / 1–2", row.TextContent);
        Assert.Contains("pending", row.TextContent);
        Assert.Contains("2.50 USD", row.TextContent);
    }

    [Fact]
    public async Task Bad_input_shows_the_services_errors_beside_the_fields_keeps_what_was_typed_but_the_secrets_and_creates_nothing()
    {
        var (owner, orgId) = await _kit.OwnerAsync("dep-bad@example.com");
        await DeploymentsConsole.PoolAsync(_kit, orgId);
        var form = await owner.GetAsync($"/orgs/{orgId}/deployments/new");

        var fields = DeploymentsConsole.Valid("Bad Name!");
        fields["GpuType"] = "NVIDIA Z9";
        fields["MinReplicas"] = "3";
        fields["MaxReplicas"] = "1";
        fields["Runtime"] = "container";
        var refused = await owner.SubmitAsync(form, "main form.deployment-form", fields);

        Assert.Equal(HttpStatusCode.OK, refused.Status);
        Assert.Contains("1-100 characters", refused.FieldError("Name"));
        Assert.Contains("no machine this organization may use", refused.FieldError("GpuType"));
        Assert.Contains("must not be more than maxReplicas", refused.FieldError("MinReplicas"));
        Assert.Contains("runs as a process", refused.FieldError("Runtime"));
        Assert.Equal(("Bad Name!", "NVIDIA Z9", "3", "1"), (refused.InputValue("Name"), refused.InputValue("GpuType"), refused.InputValue("MinReplicas"), refused.InputValue("MaxReplicas")));
        Assert.Equal("--ctx-size\n512", refused.Find("textarea[name=EngineArgs]")!.TextContent.Trim().ReplaceLineEndings("\n"));
        Assert.Equal("", refused.Find("textarea[name=Secrets]")!.TextContent);
        Assert.Contains("type them again", refused.FieldError("Secrets"));
        Assert.DoesNotContain("hf_secret_value", refused.Body);
        Assert.Empty(await DeploymentsConsole.DeploymentsAsync(_kit, orgId));

        var malformed = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/deployments/new"), "main form.deployment-form", new(DeploymentsConsole.Valid("ok-name")) { ["Secrets"] = "no equals sign", ["MaxReplicas"] = "many" });
        Assert.Equal(HttpStatusCode.OK, malformed.Status);
        Assert.Contains("NAME=value", malformed.FieldError("Secrets"));
        Assert.NotEmpty(malformed.FieldError("MaxReplicas"));
        Assert.Empty(await DeploymentsConsole.DeploymentsAsync(_kit, orgId));
    }

    [Fact]
    public async Task An_owner_scales_with_inline_errors_for_max_below_min_then_deletes_the_deployment()
    {
        var (owner, orgId) = await _kit.OwnerAsync("dep-scale@example.com");
        await DeploymentsConsole.PoolAsync(_kit, orgId);
        var created = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/deployments/new"), "main form.deployment-form", DeploymentsConsole.Valid("scaler"));
        var path = created.Location!.Split('?')[0];

        var refused = await owner.SubmitAsync(await owner.GetAsync(path), "main form[action*=Scale]", new() { ["MinReplicas"] = "4", ["MaxReplicas"] = "2" });
        Assert.Equal(HttpStatusCode.OK, refused.Status);
        Assert.Contains("must not be more than maxReplicas", refused.FieldError("MinReplicas"));
        Assert.Equal(("4", "2"), (refused.InputValue("MinReplicas"), refused.InputValue("MaxReplicas")));
        Assert.Equal((1, 2), await DeploymentsConsole.BoundsAsync(_kit, orgId));

        var scaled = await owner.SubmitAsync(await owner.GetAsync(path), "main form[action*=Scale]", new() { ["MinReplicas"] = "0", ["MaxReplicas"] = "3" });
        Assert.Equal($"{path}?done=scaled", scaled.Location);
        Assert.Equal((0, 3), await DeploymentsConsole.BoundsAsync(_kit, orgId));
        Assert.Contains("updated", (await owner.GetAsync(path)).FindAll("table.events td .badge").Select(b => b.TextContent));

        var deleted = await owner.SubmitAsync(await owner.GetAsync(path), "main form[action*=Delete]");
        Assert.Equal($"/orgs/{orgId}/deployments?done=deleted", deleted.Location);
        var list = await owner.GetAsync(deleted.Location!);
        Assert.Contains("Deployment deleted", list.Find("p.notice")!.TextContent);
        Assert.Empty(list.FindAll("table.deployments tbody tr"));
        Assert.Equal(HttpStatusCode.NotFound, (await owner.GetAsync(path)).Status);
    }

    [Fact]
    public async Task A_viewer_reads_deployments_but_gets_no_create_or_scale_buttons_a_403_page_for_the_form_and_refused_posts_that_change_nothing()
    {
        var (owner, orgId) = await _kit.OwnerAsync("dep-owner2@example.com");
        await DeploymentsConsole.PoolAsync(_kit, orgId);
        var created = await owner.SubmitAsync(await owner.GetAsync($"/orgs/{orgId}/deployments/new"), "main form.deployment-form", DeploymentsConsole.Valid("watched"));
        var path = created.Location!.Split('?')[0];
        using var viewer = await _kit.AddMemberAsync(owner, orgId, "dep-viewer@example.com", "viewer");

        var list = await viewer.GetAsync($"/orgs/{orgId}/deployments");
        Assert.Equal(HttpStatusCode.OK, list.Status);
        Assert.Contains("watched", list.Find("table.deployments")!.TextContent);
        Assert.Null(list.Find($"a[href='/orgs/{orgId}/deployments/new']"));
        var detail = await viewer.GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, detail.Status);
        Assert.Null(detail.Find("main form[action*=Scale]"));
        Assert.Null(detail.Find("main form[action*=Delete]"));

        var form = await viewer.GetAsync($"/orgs/{orgId}/deployments/new");
        Assert.Equal(HttpStatusCode.Forbidden, form.Status);
        Assert.Equal("text/html", form.ContentType);

        // Posts forged with the viewer's own valid form token (from the sign-out form every page has).
        string Token(ConsoleResponse page) => page.Find("form.signout input[name=__RequestVerificationToken]")!.GetAttribute("value")!;
        var create = await viewer.PostAsync($"/orgs/{orgId}/deployments/new",
            [new("__RequestVerificationToken", Token(detail)), .. DeploymentsConsole.Valid("sneaky")]);
        Assert.Equal(HttpStatusCode.Forbidden, create.Status);
        var scale = await viewer.PostAsync($"{path}?handler=Scale",
            [new("__RequestVerificationToken", Token(await viewer.GetAsync(path))), new("MinReplicas", "0"), new("MaxReplicas", "9")]);
        Assert.Equal(HttpStatusCode.Forbidden, scale.Status);
        var delete = await viewer.PostAsync($"{path}?handler=Delete", [new("__RequestVerificationToken", Token(await viewer.GetAsync(path)))]);
        Assert.Equal(HttpStatusCode.Forbidden, delete.Status);

        var only = Assert.Single(await DeploymentsConsole.DeploymentsAsync(_kit, orgId));
        Assert.Equal(("watched", 1, 2, null), (only.Name, only.MinReplicas, only.MaxReplicas, only.DeletedAt));
    }

    [Fact]
    public async Task Another_organizations_deployment_is_a_404_page_and_a_stranger_gets_a_404_for_the_list()
    {
        var (ownerA, orgA) = await _kit.OwnerAsync("dep-a@example.com", "A");
        await DeploymentsConsole.PoolAsync(_kit, orgA);
        var created = await ownerA.SubmitAsync(await ownerA.GetAsync($"/orgs/{orgA}/deployments/new"), "main form.deployment-form", DeploymentsConsole.Valid("private-a"));
        var idA = created.Location!.Split('?')[0].Split('/')[^1];
        var (ownerB, orgB) = await _kit.OwnerAsync("dep-b@example.com", "B");

        var viaOwnOrg = await ownerB.GetAsync($"/orgs/{orgB}/deployments/{idA}");
        Assert.Equal(HttpStatusCode.NotFound, viaOwnOrg.Status);
        Assert.Equal("text/html", viaOwnOrg.ContentType);
        Assert.DoesNotContain("private-a", viaOwnOrg.Body);
        Assert.Equal(HttpStatusCode.NotFound, (await ownerB.GetAsync($"/orgs/{orgA}/deployments/{idA}")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await ownerB.GetAsync($"/orgs/{orgA}/deployments")).Status);

        // An owner of both still sees A's deployment only under A.
        await _kit.AddMemberAsync(ownerA, orgA, "dep-both@example.com", "admin").ContinueWith(t => t.Result.Dispose());
        using var both = await _kit.SignInAsync("dep-both@example.com");
        using (var bInvite = await ownerB.Http.PostAsJsonAsync($"api/v1/orgs/{orgB}/invitations", new { email = "dep-both@example.com", role = "admin" }))
        {
            var token = (await bInvite.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>()).GetProperty("token").GetString();
            using var accepted = await both.Http.PostAsJsonAsync("api/v1/invitations/accept", new { token });
            Assert.True(accepted.IsSuccessStatusCode, await accepted.Content.ReadAsStringAsync());
        }

        Assert.Equal(HttpStatusCode.OK, (await both.GetAsync($"/orgs/{orgA}/deployments/{idA}")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await both.GetAsync($"/orgs/{orgB}/deployments/{idA}")).Status);
    }
}

/// <summary>The deployments pages in real Chromium: create with the keyboard and labels, the list on a phone, the detail page.</summary>
[Collection(RealProcessLoad.Name)]
public sealed class DeploymentsBrowserTests : ConsoleBrowserTest
{
    protected override Task<ConsoleKit> StartKitAsync() => DeploymentsConsole.StartAsync();

    [Fact]
    public async Task An_owner_signs_in_creates_a_deployment_by_its_labels_sees_its_detail_and_the_list_on_desktop_and_phone()
    {
        var (_, orgId) = await Kit.OwnerAsync("dep-browser@example.com");
        await DeploymentsConsole.PoolAsync(Kit, orgId);

        await using (var browser = await BrowserKit.OpenAsync(Kit.RootUrl))
        {
            var page = browser.Page;
            await BrowserSteps.SignInAsync(page, "dep-browser@example.com", $"/orgs/{orgId}/deployments");
            await page.GetByRole(AriaRole.Link, new() { Name = "New deployment" }).ClickAsync();
            await page.WaitForURLAsync("**/deployments/new");
            await page.GetByLabel("Name", new() { Exact = true }).FillAsync("acme-tiny");
            await page.GetByLabel("Engine", new() { Exact = true }).SelectOptionAsync("builtin-llama");
            await page.GetByLabel("Artifact (a path on the machine, or a hub id)").FillAsync(DeploymentsConsole.Gguf);
            await page.GetByLabel("GPU type (empty: any)").FillAsync(DeploymentsConsole.H100);
            await page.GetByLabel("Minimum replicas (0: scale to zero)").FillAsync("3");
            await page.GetByLabel("Maximum replicas").FillAsync("1");
            await page.GetByRole(AriaRole.Button, new() { Name = "Create deployment" }).ClickAsync();
            await page.WaitForLoadStateAsync();
            Assert.Contains("must not be more than maxReplicas", await page.Locator("[data-valmsg-for=MinReplicas]").TextContentAsync());
            Assert.Equal("acme-tiny", await page.GetByLabel("Name", new() { Exact = true }).InputValueAsync());
            await browser.ScreenshotAsync("deployment-new-errors-desktop");

            await page.GetByLabel("Minimum replicas (0: scale to zero)").FillAsync("1");
            await page.GetByLabel("Maximum replicas").FillAsync("2");
            await page.GetByRole(AriaRole.Button, new() { Name = "Create deployment" }).ClickAsync();
            await page.WaitForURLAsync("**/deployments/*-*?done=created");
            var deployment = Assert.Single(await DeploymentsConsole.DeploymentsAsync(Kit, orgId));
            await DeploymentsConsole.RunAndChargeAsync(Kit, deployment, await DeploymentsConsole.PoolMachineAsync(Kit), costMicros: 2_500_000, seconds: 3600);
            await page.ReloadAsync();
            Assert.Equal("Deployment acme-tiny", await page.Locator("main h1").TextContentAsync());
            Assert.Contains("platform pool", await page.Locator("table[aria-labelledby=replicas-heading]").TextContentAsync());
            await browser.ScreenshotAsync("deployment-detail-desktop");

            await page.GetByRole(AriaRole.Link, new() { Name = "← All deployments" }).ClickAsync();
            await page.WaitForURLAsync($"**/orgs/{orgId}/deployments");
            Assert.Contains("acme-tiny", await page.Locator("table.deployments").TextContentAsync());
            await browser.ScreenshotAsync("deployments-desktop");
            browser.AssertSameOriginOnly();
            browser.AssertNoScriptErrors();
        }

        await using (var phone = await BrowserKit.OpenAsync(Kit.RootUrl, BrowserKit.Phone))
        {
            var page = phone.Page;
            await BrowserSteps.SignInAsync(page, "dep-browser@example.com", $"/orgs/{orgId}/deployments");
            Assert.Contains("acme-tiny", await page.Locator("table.deployments").TextContentAsync());
            Assert.True(await page.EvaluateAsync<int>("() => document.documentElement.scrollWidth") <= 390, "the deployments list scrolls sideways on a 390px phone");
            await phone.ScreenshotAsync("deployments-phone");
            await page.GetByRole(AriaRole.Link, new() { Name = "acme-tiny" }).ClickAsync();
            await page.WaitForURLAsync("**/deployments/*-*");
            Assert.True(await page.EvaluateAsync<int>("() => document.documentElement.scrollWidth") <= 390, "the deployment's page scrolls sideways on a 390px phone");
            await phone.ScreenshotAsync("deployment-detail-phone");
            phone.AssertSameOriginOnly();
            phone.AssertNoScriptErrors();
        }
    }
}

/// <summary>Setting up deployments for console tests: a server with the scheduler and the meter idle, a platform-pool machine, prices and funds.</summary>
internal static class DeploymentsConsole
{
    public const string H100 = "NVIDIA H100 80GB HBM3";
    public const string Gguf = "/srv/sluice/models/tiny.gguf";

    /// <summary>The scheduler, autoscaler and meter do not run during a test: replicas and charges are written by hand.</summary>
    public static Task<ConsoleKit> StartAsync() => ConsoleKit.StartAsync(settings: new Dictionary<string, string?>
    {
        ["Deployments:Scheduler:Interval"] = "00:10:00",
        ["Deployments:Scheduler:PassOnWake"] = "false",
        ["Deployments:Scheduler:LeaseDuration"] = "00:30:00",
        ["Deployments:Billing:MeterInterval"] = "01:00:00",
    });

    /// <summary>The form's fields for a valid deployment: the built-in engine on the pool's GGUF file, one H100 per replica, a secret.</summary>
    public static Dictionary<string, string> Valid(string name) => new()
    {
        ["Name"] = name,
        ["Engine"] = "builtin-llama",
        ["Artifact"] = Gguf,
        ["GpuType"] = H100,
        ["GpusPerReplica"] = "1",
        ["MinReplicas"] = "1",
        ["MaxReplicas"] = "2",
        ["EngineArgs"] = "--ctx-size\n512",
        ["Secrets"] = "HF_TOKEN=hf_secret_value",
    };

    /// <summary>The platform pool gets a machine with two H100s holding <see cref="Gguf"/> (once); H100 time gets a price; the organization's wallet gets funds.</summary>
    public static async Task PoolAsync(ConsoleKit kit, Guid orgId)
    {
        using var op = await GatewayKit.OperatorAsync(kit.Sluice);
        if (await PoolMachineOrNullAsync(kit) is null)
        {
            using var agent = kit.Sluice.Anonymous();
            await ComputeKit.JoinAsync(agent, (await ComputeKit.CreateJoinTokenAsync(op)).Token,
                ComputeKit.Inventory(gpus: 2) with { Models = [new ModelFile { Path = Gguf, Bytes = 4096 }] });
            using var price = await op.PostAsJsonAsync("/api/v1/gpu-prices", new { gpuType = H100, perGpuHourMicros = 2_500_000 });
            Assert.True(price.IsSuccessStatusCode, await price.Content.ReadAsStringAsync());
        }

        using var credit = await op.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 1_000_000_000, reason = "deployments under test" });
        Assert.True(credit.IsSuccessStatusCode, await credit.Content.ReadAsStringAsync());
    }

    public static async Task<Guid> PoolMachineAsync(ConsoleKit kit) => await PoolMachineOrNullAsync(kit) ?? throw new InvalidOperationException("no pool machine");

    private static async Task<Guid?> PoolMachineOrNullAsync(ConsoleKit kit)
    {
        using var scope = kit.Sluice.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        return await db.Machines.Where(m => m.OrganizationId == null).Select(m => (Guid?)m.Id).FirstOrDefaultAsync();
    }

    public static async Task<List<Deployment>> DeploymentsAsync(ConsoleKit kit, Guid orgId)
    {
        using var scope = kit.Sluice.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        return await db.Deployments.AsNoTracking().Where(d => d.OrganizationId == orgId).ToListAsync();
    }

    public static async Task<(int Min, int Max)> BoundsAsync(ConsoleKit kit, Guid orgId)
    {
        var deployment = Assert.Single(await DeploymentsAsync(kit, orgId));
        return (deployment.MinReplicas, deployment.MaxReplicas);
    }

    /// <summary>A ready replica of the deployment on the machine, and one charge for its GPU time (as the scheduler and the meter write them).</summary>
    public static async Task RunAndChargeAsync(ConsoleKit kit, Deployment deployment, Guid machineId, long costMicros, long seconds)
    {
        using var scope = kit.Sluice.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<SluiceDbContext>();
        var placed = DateTimeOffset.UtcNow.AddSeconds(-seconds);
        var replica = new DeploymentReplica
        {
            Id = Guid.NewGuid(), DeploymentId = deployment.Id, OrganizationId = deployment.OrganizationId, Generation = 1, MachineId = machineId, TaskId = Guid.NewGuid(),
            GpuType = H100, GpuCount = 1, State = ReplicaStates.Ready, CreatedAt = placed, ReadyAt = placed.AddSeconds(5),
        };
        db.DeploymentReplicas.Add(replica);
        db.Set<DeploymentCharge>().Add(new DeploymentCharge
        {
            Id = Guid.NewGuid(), ReplicaId = replica.Id, DeploymentId = deployment.Id, OrganizationId = deployment.OrganizationId, From = placed, To = placed.AddSeconds(seconds),
            Seconds = seconds, GpuType = H100, GpuCount = 1, PerGpuHourMicros = 2_500_000, CostMicros = costMicros, Meter = "test", CreatedAt = DateTimeOffset.UtcNow,
        });
        await db.SaveChangesAsync();
    }
}
