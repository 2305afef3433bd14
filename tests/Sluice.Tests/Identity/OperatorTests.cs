using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Identity;

public sealed class OperatorTests
{
    [Fact]
    public async Task The_bootstrapped_operator_signs_in_lists_organizations_and_manages_operators()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var operatorClient = sluice.Anonymous();
        var (_, account, secret) = Assert.Single(sluice.Credentials.Written);
        var (person, personId) = await sluice.SignUpAndLoginAsync("person@example.com");
        await SluiceFactory.CreateOrganizationAsync(person, "Customer");

        var login = await operatorClient.PostAsJsonAsync("/api/v1/auth/login", new { email = account, password = secret });
        var orgs = await operatorClient.GetFromJsonAsync<JsonElement>("/api/v1/admin/orgs");
        var granted = await operatorClient.PostAsJsonAsync("/api/v1/operators", new { email = "person@example.com" });
        var unknown = await operatorClient.PostAsJsonAsync("/api/v1/operators", new { email = "ghost@example.com" });
        var operators = await operatorClient.GetFromJsonAsync<JsonElement>("/api/v1/operators");
        var revoked = await operatorClient.DeleteAsync($"/api/v1/operators/{personId}");
        var me = await operatorClient.GetFromJsonAsync<JsonElement>("/api/v1/me");
        var lastOne = await operatorClient.DeleteAsync($"/api/v1/operators/{me.GetProperty("id").GetGuid()}");

        Assert.Equal(HttpStatusCode.OK, login.StatusCode);
        Assert.Equal("Customer", Assert.Single(orgs.EnumerateArray()).GetProperty("name").GetString());
        Assert.Equal(HttpStatusCode.OK, granted.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, unknown.StatusCode);
        Assert.Equal(2, operators.GetArrayLength());
        Assert.Equal(HttpStatusCode.NoContent, revoked.StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, lastOne.StatusCode);
    }
}
