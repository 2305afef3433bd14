using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Audit;

/// <summary>Every endpoint that changes state writes its audit entry, with the actor, the organization and no secrets.</summary>
public sealed class AuditCoverageTests
{
    // Endpoints that change state without being administrative actions, and why.
    private static readonly Dictionary<string, string> NotAudited = new()
    {
        ["POST /api/v1/auth/login"] = "sign-ins are recorded as login events (metadata), not administrative actions",
        ["POST /api/v1/auth/logout"] = "ends the caller's own session",
        ["POST /api/v1/audit/checkpoint"] = "signs the log itself; the checkpoint is its own record",
        ["POST /v1/chat/completions"] = "inference: metered as usage events (metadata only), not administrative",
        ["POST /api/v1/orgs/{orgId:guid}/wallet/checkout"] = "creates a payment page at the processor; the credit, when paid, is audited as wallet.top_up (TopUpTests)",
        ["POST /api/v1/billing/stripe/webhook"] = "signed by Stripe, not a user; audits wallet.top_up as system (TopUpTests reads the entry; MoneyAuditTests the refused ones)",
        ["POST /v1/completions"] = "inference: metered as usage events",
        ["POST /v1/embeddings"] = "inference: metered as usage events",
        ["POST /v1/responses"] = "inference (the Responses API, stateless): metered as usage events",
        ["POST /v1/messages"] = "inference (Anthropic's Messages API, stateless): metered as usage events",
        ["POST /v1/messages/count_tokens"] = "a token count from Sluice's own tokenizer: changes nothing, keeps nothing",
        ["POST /api/v1/me/notifications/{notificationId:guid}/read"] = "marks the caller's own notice as read",
        ["POST /api/v1/admin/users/{userId:guid}/erase"] = "writes user.close then user.erase (PrivacyRequestTests)",
        ["POST /api/v1/agent/join"] = "audited as machine.join with the join token as its actor, not a user or key (JoinFlowTests reads it, and the refusals)",
        ["POST /api/v1/agent/heartbeat"] = "machine traffic, not an administrative action; its refusals are audited as machine.heartbeat (HeartbeatTests)",
        ["POST /api/v1/admin/retention/sweep"] = "a sweep writes retention.run and a retention.sweep entry per class it touched (RetentionTests)",
    };

    [Fact]
    public async Task Each_state_changing_endpoint_appends_its_entry()
    {
        await using var stalled = await FakeUpstream.StartAsync();
        stalled.DelayBeforeHeaders = TimeSpan.FromSeconds(2); // a batch that is still running when it is cancelled
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var covered = new Dictionary<string, string>();
        using var operatorClient = sluice.Anonymous();
        var (_, operatorAccount, operatorSecret) = Assert.Single(sluice.Credentials.Written);
        await operatorClient.PostAsJsonAsync("/api/v1/auth/login", new { email = operatorAccount, password = operatorSecret });

        using var owner = sluice.Anonymous();
        await Expect(covered, "POST /api/v1/auth/signup", "user.signup", database,
            () => owner.PostAsJsonAsync("/api/v1/auth/signup", new { email = "owner@example.com", name = "O", password = SluiceFactory.Password, ageAttestation = true }));
        await owner.PostAsJsonAsync("/api/v1/auth/login", new { email = "owner@example.com", password = SluiceFactory.Password });
        await Expect(covered, "PATCH /api/v1/me", "user.profile_update", database, () => owner.PatchAsJsonAsync("/api/v1/me", new { name = "Owner" }));
        await Expect(covered, "POST /api/v1/me/password", "user.password_change", database,
            () => owner.PostAsJsonAsync("/api/v1/me/password", new { currentPassword = SluiceFactory.Password, newPassword = "a new sturdy phrase" }));
        var orgId = Guid.Empty;
        await Expect(covered, "POST /api/v1/orgs", "org.create", database, async () =>
        {
            var response = await owner.PostAsJsonAsync("/api/v1/orgs", new { name = "Acme" });
            orgId = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
            return response;
        }, expectOrg: () => orgId);
        await Expect(covered, "PATCH /api/v1/orgs/{orgId:guid}", "org.update", database, () => owner.PatchAsJsonAsync($"/api/v1/orgs/{orgId}", new { name = "Acme 2" }), () => orgId);

        var (member, memberId) = await sluice.SignUpAndLoginAsync("member@example.com");
        string? token = null;
        var invitationId = Guid.Empty;
        await Expect(covered, "POST /api/v1/orgs/{orgId:guid}/invitations", "invitation.create", database, async () =>
        {
            var response = await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/invitations", new { email = "member@example.com", role = "member" });
            token = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString();
            return response;
        }, () => orgId);
        await Expect(covered, "POST /api/v1/invitations/accept", "invitation.accept", database, () => member.PostAsJsonAsync("/api/v1/invitations/accept", new { token }), () => orgId);
        await Expect(covered, "PATCH /api/v1/orgs/{orgId:guid}/members/{userId:guid}", "member.role_change", database,
            () => owner.PatchAsJsonAsync($"/api/v1/orgs/{orgId}/members/{memberId}", new { role = "viewer" }), () => orgId);
        await Expect(covered, "DELETE /api/v1/orgs/{orgId:guid}/members/{userId:guid}", "member.remove", database,
            () => owner.DeleteAsync($"/api/v1/orgs/{orgId}/members/{memberId}"), () => orgId);
        var second = await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/invitations", new { email = "later@example.com", role = "viewer" });
        invitationId = (await second.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        await Expect(covered, "DELETE /api/v1/orgs/{orgId:guid}/invitations/{invitationId:guid}", "invitation.revoke", database,
            () => owner.DeleteAsync($"/api/v1/orgs/{orgId}/invitations/{invitationId}"), () => orgId);

        var keyId = Guid.Empty;
        string? secret = null;
        await Expect(covered, "POST /api/v1/orgs/{orgId:guid}/keys", "key.create", database, async () =>
        {
            var response = await owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/keys", new { name = "k" });
            var body = await response.Content.ReadFromJsonAsync<JsonElement>();
            keyId = body.GetProperty("details").GetProperty("id").GetGuid();
            secret = body.GetProperty("key").GetString();
            return response;
        }, () => orgId);
        await Expect(covered, "POST /api/v1/orgs/{orgId:guid}/keys/{keyId:guid}/rotate", "key.rotate", database,
            () => owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/keys/{keyId}/rotate", new { }), () => orgId);
        await Expect(covered, "POST /api/v1/orgs/{orgId:guid}/keys/{keyId:guid}/reassign", "key.reassign", database,
            () => owner.PostAsync($"/api/v1/orgs/{orgId}/keys/{keyId}/reassign", null), () => orgId);
        await Expect(covered, "DELETE /api/v1/orgs/{orgId:guid}/keys/{keyId:guid}", "key.revoke", database,
            () => owner.DeleteAsync($"/api/v1/orgs/{orgId}/keys/{keyId}"), () => orgId);

        await Expect(covered, "POST /api/v1/operators", "operator.grant", database, () => operatorClient.PostAsJsonAsync("/api/v1/operators", new { email = "owner@example.com" }));
        var ownerId = (await owner.GetFromJsonAsync<JsonElement>("/api/v1/me")).GetProperty("id").GetGuid();
        await Expect(covered, "DELETE /api/v1/operators/{userId:guid}", "operator.revoke", database, () => operatorClient.DeleteAsync($"/api/v1/operators/{ownerId}"));

        Guid providerId = Guid.Empty, routeId = Guid.Empty;
        await Expect(covered, "POST /api/v1/providers", "provider.create", database, async () =>
        {
            var response = await operatorClient.PostAsJsonAsync("/api/v1/providers", new { name = "local", kind = "openai-compatible", baseUrl = "http://127.0.0.1:9/v1/", apiKey = "k" });
            providerId = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
            return response;
        });
        await Expect(covered, "PATCH /api/v1/providers/{id:guid}", "provider.update", database,
            () => operatorClient.PatchAsJsonAsync($"/api/v1/providers/{providerId}", new { baseUrl = "http://127.0.0.1:10/v1/" }));
        await Expect(covered, "POST /api/v1/catalog/models", "model.create", database, () => operatorClient.PostAsJsonAsync("/api/v1/catalog/models", new { id = "llama" }));
        await Expect(covered, "POST /api/v1/catalog/routes", "route.create", database, async () =>
        {
            var response = await operatorClient.PostAsJsonAsync("/api/v1/catalog/routes", new { model = "llama", provider = "local", upstreamModel = "l", retainsData = false, trainsOnData = false });
            routeId = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
            return response;
        });
        await Expect(covered, "POST /api/v1/catalog/routes/{routeId:guid}/prices", "price.set", database,
            () => operatorClient.PostAsJsonAsync($"/api/v1/catalog/routes/{routeId}/prices", new { inputPerMillionMicros = 100, outputPerMillionMicros = 200 }));
        await Expect(covered, "POST /api/v1/gpu-prices", "gpu_price.set", database,
            () => operatorClient.PostAsJsonAsync("/api/v1/gpu-prices", new { gpuType = "NVIDIA L4", perGpuHourMicros = 800_000 }));
        await Expect(covered, "DELETE /api/v1/catalog/routes/{routeId:guid}", "route.delete", database, () => operatorClient.DeleteAsync($"/api/v1/catalog/routes/{routeId}"));
        await Expect(covered, "POST /api/v1/catalog/aliases", "model.alias.create", database,
            () => operatorClient.PostAsJsonAsync("/api/v1/catalog/aliases", new { alias = "llama-latest", model = "llama" }));
        await Expect(covered, "DELETE /api/v1/catalog/aliases/{*alias}", "model.alias.delete", database, () => operatorClient.DeleteAsync("/api/v1/catalog/aliases/llama-latest"));
        await Expect(covered, "DELETE /api/v1/catalog/models/{*id}", "model.delete", database, () => operatorClient.DeleteAsync("/api/v1/catalog/models/llama"));
        await Expect(covered, "DELETE /api/v1/providers/{id:guid}", "provider.delete", database, () => operatorClient.DeleteAsync($"/api/v1/providers/{providerId}"));
        await Expect(covered, "POST /api/v1/admin/orgs/{orgId:guid}/wallet/credits", "wallet.credit", database,
            () => operatorClient.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/wallet/credits", new { amountMicros = 1_000_000, reason = "test" }), () => orgId);
        string? code = null;
        await Expect(covered, "POST /api/v1/admin/redemption-codes", "redemption.create", database, async () =>
        {
            var response = await operatorClient.PostAsJsonAsync("/api/v1/admin/redemption-codes", new { amountMicros = 1_000, expiresAt = DateTimeOffset.UtcNow.AddDays(1) });
            code = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("codes")[0].GetString();
            return response;
        });
        await Expect(covered, "POST /api/v1/orgs/{orgId:guid}/wallet/redeem", "wallet.redeem", database,
            () => owner.PostAsJsonAsync($"/api/v1/orgs/{orgId}/wallet/redeem", new { code }), () => orgId);
        await Expect(covered, "PUT /api/v1/orgs/{orgId:guid}/wallet/alert", "wallet.alert", database,
            () => owner.PutAsJsonAsync($"/api/v1/orgs/{orgId}/wallet/alert", new { thresholdMicros = 1_000, url = "https://hooks.example.com/sluice" }), () => orgId);
        await Expect(covered, "PATCH /api/v1/admin/orgs/{orgId:guid}/limits", "org.limits", database,
            () => operatorClient.PatchAsJsonAsync($"/api/v1/admin/orgs/{orgId}/limits", new { requestsPerMinute = 100 }), () => orgId);

        await GatewayKit.ProviderAsync(operatorClient, "stalled", stalled.BaseUrl);
        await GatewayKit.ModelAsync(operatorClient, "slow");
        await GatewayKit.RouteAsync(operatorClient, "slow", "stalled", "slow");
        var (_, batchKey) = await SluiceFactory.CreateKeyAsync(owner, orgId, "batch");
        using var keyClient = sluice.WithKey(batchKey);
        string? fileId = null, batchId = null;
        await Expect(covered, "POST /v1/files", "file.upload", database, async () =>
        {
            var response = await BatchKit.UploadAsync(keyClient, BatchKit.ChatLines(2, model: "slow"));
            fileId = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString();
            return response;
        }, () => orgId);
        await Expect(covered, "POST /v1/batches", "batch.create", database, async () =>
        {
            var response = await keyClient.PostAsJsonAsync("/v1/batches", new { input_file_id = fileId, endpoint = "/v1/chat/completions", completion_window = "24h" });
            batchId = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString();
            return response;
        }, () => orgId);
        await Expect(covered, "POST /v1/batches/{batchId}/cancel", "batch.cancel", database, () => keyClient.PostAsync($"/v1/batches/{batchId}/cancel", null), () => orgId);
        await Expect(covered, "DELETE /v1/files/{fileId}", "file.delete", database, () => keyClient.DeleteAsync($"/v1/files/{fileId}"), () => orgId);

        // Privacy: consents, data-subject requests, legal holds, subprocessors, staff access grants.
        await Expect(covered, "PUT /api/v1/me/consents", "consent.grant", database, () => owner.PutAsJsonAsync("/api/v1/me/consents", new { purpose = "marketing", granted = true }));
        await Expect(covered, "PUT /api/v1/orgs/{orgId:guid}/consents", "consent.withdraw", database,
            () => owner.PutAsJsonAsync($"/api/v1/orgs/{orgId}/consents", new { purpose = "training", granted = false }), () => orgId);
        var requestId = Guid.Empty;
        await Expect(covered, "POST /api/v1/privacy/requests", "privacy_request.create", database, async () =>
        {
            var response = await owner.PostAsJsonAsync("/api/v1/privacy/requests", new { type = "access" });
            requestId = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
            return response;
        });
        await Expect(covered, "POST /api/v1/privacy/requests/{requestId:guid}/verify", "privacy_request.verify", database,
            () => owner.PostAsJsonAsync($"/api/v1/privacy/requests/{requestId}/verify", new { password = "a new sturdy phrase" }));
        await Expect(covered, "POST /api/v1/admin/privacy/requests/{requestId:guid}/approve", "privacy_request.approve", database,
            () => operatorClient.PostAsJsonAsync($"/api/v1/admin/privacy/requests/{requestId}/approve", new { }));
        var export = await member.PostAsJsonAsync("/api/v1/privacy/requests", new { type = "export" });
        var exportId = (await export.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        await member.PostAsJsonAsync($"/api/v1/privacy/requests/{exportId}/verify", new { password = SluiceFactory.Password });
        await Expect(covered, "POST /api/v1/admin/privacy/requests/{requestId:guid}/deny", "privacy_request.deny", database,
            () => operatorClient.PostAsJsonAsync($"/api/v1/admin/privacy/requests/{exportId}/deny", new { reason = "an export was delivered yesterday" }));
        await Expect(covered, "POST /api/v1/privacy/requests/{requestId:guid}/appeal", "privacy_request.appeal", database,
            () => member.PostAsJsonAsync($"/api/v1/privacy/requests/{exportId}/appeal", new { reason = "that export was incomplete" }));
        await Expect(covered, "POST /api/v1/privacy/requests/{requestId:guid}/cancel", "privacy_request.cancel", database,
            () => member.PostAsync($"/api/v1/privacy/requests/{exportId}/cancel", null));
        var holdId = Guid.Empty;
        await Expect(covered, "POST /api/v1/admin/legal-holds", "legal_hold.place", database, async () =>
        {
            var response = await operatorClient.PostAsJsonAsync("/api/v1/admin/legal-holds", new { scope = "org", organizationId = orgId, reason = "Matter 1" });
            holdId = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
            return response;
        }, () => orgId);
        await Expect(covered, "POST /api/v1/admin/legal-holds/{holdId:guid}/release", "legal_hold.release", database,
            () => operatorClient.PostAsJsonAsync($"/api/v1/admin/legal-holds/{holdId}/release", new { reason = "closed" }), () => orgId);
        var subprocessorId = Guid.Empty;
        await Expect(covered, "POST /api/v1/admin/subprocessors", "subprocessor.create", database, async () =>
        {
            var response = await operatorClient.PostAsJsonAsync("/api/v1/admin/subprocessors", new { name = "Mailer", purpose = "service email", location = "EU" });
            subprocessorId = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
            return response;
        });
        await Expect(covered, "PATCH /api/v1/admin/subprocessors/{subprocessorId:guid}", "subprocessor.update", database,
            () => operatorClient.PatchAsJsonAsync($"/api/v1/admin/subprocessors/{subprocessorId}", new { location = "EU (Frankfurt)" }));
        await Expect(covered, "DELETE /api/v1/admin/subprocessors/{subprocessorId:guid}", "subprocessor.delete", database,
            () => operatorClient.DeleteAsync($"/api/v1/admin/subprocessors/{subprocessorId}"));
        var grantIds = new List<Guid>();
        for (var i = 0; i < 2; i++)
        {
            await Expect(covered, "POST /api/v1/admin/orgs/{orgId:guid}/access-grants", "staff_access.request", database, async () =>
            {
                var response = await operatorClient.PostAsJsonAsync($"/api/v1/admin/orgs/{orgId}/access-grants", new { reason = "debug a failed batch", hours = 1 });
                grantIds.Add((await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid());
                return response;
            }, () => orgId);
        }

        await Expect(covered, "POST /api/v1/orgs/{orgId:guid}/access-grants/{grantId:guid}/approve", "staff_access.approve", database,
            () => owner.PostAsync($"/api/v1/orgs/{orgId}/access-grants/{grantIds[0]}/approve", null), () => orgId);
        await Expect(covered, "POST /api/v1/orgs/{orgId:guid}/access-grants/{grantId:guid}/deny", "staff_access.deny", database,
            () => owner.PostAsync($"/api/v1/orgs/{orgId}/access-grants/{grantIds[1]}/deny", null), () => orgId);
        await Expect(covered, "DELETE /api/v1/orgs/{orgId:guid}/access-grants/{grantId:guid}", "staff_access.revoke", database,
            () => owner.DeleteAsync($"/api/v1/orgs/{orgId}/access-grants/{grantIds[0]}"), () => orgId);

        // Machines: an org owner manages its private fleet.
        string? joinToken = null;
        await Expect(covered, "POST /api/v1/machines/join-tokens", "machine.join_token_create", database, async () =>
        {
            var response = await owner.PostAsJsonAsync("/api/v1/machines/join-tokens", new { organizationId = orgId });
            joinToken = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString();
            return response;
        }, () => orgId);
        var spareToken = await (await owner.PostAsJsonAsync("/api/v1/machines/join-tokens", new { organizationId = orgId })).Content.ReadFromJsonAsync<JsonElement>();
        await Expect(covered, "DELETE /api/v1/machines/join-tokens/{tokenId:guid}", "machine.join_token_revoke", database,
            () => owner.DeleteAsync($"/api/v1/machines/join-tokens/{spareToken.GetProperty("details").GetProperty("id").GetGuid()}"), () => orgId);
        using var agent = sluice.Anonymous();
        var machineId = (await Compute.ComputeKit.JoinAsync(agent, joinToken!)).MachineId;
        await Expect(covered, "PATCH /api/v1/machines/{id:guid}/labels", "machine.labels_update", database,
            () => owner.PatchAsJsonAsync($"/api/v1/machines/{machineId}/labels", new { labels = new { rack = "7" } }), () => orgId);
        var machineTaskId = Guid.Empty;
        await Expect(covered, "POST /api/v1/machines/{id:guid}/tasks", "machine.task_create", database, async () =>
        {
            var response = await owner.PostAsJsonAsync($"/api/v1/machines/{machineId}/tasks", new { kind = "job", runtime = "process", process = new { command = "x" } });
            machineTaskId = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
            return response;
        }, () => orgId);
        await Expect(covered, "DELETE /api/v1/machines/{id:guid}/tasks/{taskId:guid}", "machine.task_stop", database,
            () => owner.DeleteAsync($"/api/v1/machines/{machineId}/tasks/{machineTaskId}"), () => orgId);
        foreach (var change in new[] { "cordon", "uncordon", "drain" })
        {
            await Expect(covered, $"POST /api/v1/machines/{{id:guid}}/{change}", $"machine.{change}", database, () => owner.PostAsync($"/api/v1/machines/{machineId}/{change}", null), () => orgId);
        }

        await Expect(covered, "POST /api/v1/machines/{id:guid}/revoke-credential", "machine.credential_revoke", database,
            () => owner.PostAsync($"/api/v1/machines/{machineId}/revoke-credential", null), () => orgId);
        await Expect(covered, "POST /api/v1/machines/{id:guid}/decommission", "machine.decommission", database,
            () => owner.PostAsync($"/api/v1/machines/{machineId}/decommission", null), () => orgId);

        // Deployments: created, changed, published and unpublished by an operator, deleted.
        var deploymentId = Guid.Empty;
        await Expect(covered, "POST /api/v1/deployments", "deployment.create", database, async () =>
        {
            var response = await owner.PostAsJsonAsync("/api/v1/deployments", new
            {
                organizationId = orgId, name = "audited-embeddings", engine = "builtin-embeddings", artifactKind = "none", gpusPerReplica = 0, minReplicas = 1, maxReplicas = 1,
            });
            deploymentId = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
            return response;
        }, () => orgId);
        await Expect(covered, "PATCH /api/v1/deployments/{id:guid}", "deployment.update", database,
            () => owner.PatchAsJsonAsync($"/api/v1/deployments/{deploymentId}", new { maxReplicas = 2 }), () => orgId);
        await Expect(covered, "POST /api/v1/deployments/{id:guid}/publish", "deployment.publish", database,
            () => operatorClient.PostAsJsonAsync($"/api/v1/deployments/{deploymentId}/publish", new { inputPerMillionMicros = 100_000, outputPerMillionMicros = 400_000 }), () => orgId);
        await Expect(covered, "POST /api/v1/deployments/{id:guid}/unpublish", "deployment.unpublish", database,
            () => operatorClient.PostAsync($"/api/v1/deployments/{deploymentId}/unpublish", null), () => orgId);
        await Expect(covered, "DELETE /api/v1/deployments/{id:guid}", "deployment.delete", database,
            () => owner.DeleteAsync($"/api/v1/deployments/{deploymentId}"), () => orgId);

        // Every state-changing endpoint is either covered above or deliberately not audited.
        var stateChanging = sluice.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .SelectMany(e => (e.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.HttpMethodMetadata>()?.HttpMethods ?? []).Select(m => $"{m} {e.RoutePattern.RawText?.TrimEnd('/')}"))
            .Where(route => !route.StartsWith("GET ", StringComparison.Ordinal) && !route.StartsWith("HEAD ", StringComparison.Ordinal))
            .ToHashSet();
        Assert.Empty(stateChanging.Except(covered.Keys).Except(NotAudited.Keys).Order());

        await using var db = database.CreateContext();
        var log = string.Join("\n", (await db.AuditEntries.ToListAsync()).Select(e => System.Text.Encoding.UTF8.GetString(e.CanonicalBytes())));
        Assert.DoesNotContain("member@example.com", log, StringComparison.Ordinal); // ids only, never emails
        Canary.AssertAbsent(log, secret!, "the audit log");
        Canary.AssertAbsent(log, token!, "the audit log");
    }

    private static async Task Expect(
        Dictionary<string, string> covered, string route, string action, TestDatabase database, Func<Task<HttpResponseMessage>> call, Func<Guid>? expectOrg = null)
    {
        await using var db = database.CreateContext();
        var before = await db.AuditEntries.MaxAsync(e => (long?)e.Seq) ?? -1;

        var response = await call();

        Assert.True(response.IsSuccessStatusCode, $"{route}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        // The privacy policy republishes itself in the background when the subprocessor list changes (a provider added
        // earlier in this test): its own entry, by "system", may land in between and is not this call's.
        var written = await db.AuditEntries.AsNoTracking().Where(e => e.Seq > before && !(e.Action == "policy.publish" && e.Actor == "system")).ToListAsync();
        var entry = Assert.Single(written);
        Assert.Equal(action, entry.Action);
        Assert.Equal("success", entry.Outcome);
        Assert.Matches("^(user|key):[0-9a-f-]{36}$", entry.Actor);
        if (expectOrg is not null)
        {
            Assert.Equal(expectOrg(), entry.OrganizationId);
        }

        covered[route] = action;
        Assert.NotEqual(HttpStatusCode.InternalServerError, response.StatusCode);
    }
}
