using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Sluice.Storage;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Identity;

public sealed class AccountTests
{
    public static TheoryData<string, string> BadSignUps => new()
    {
        { """{"email":"not-an-email","name":"A","password":"a sturdy passphrase","ageAttestation":true}""", "email" },
        { """{"email":"a@example.com","password":"a sturdy passphrase","ageAttestation":true}""", "name" },
        { """{"email":"a@example.com","name":"A","password":"short","ageAttestation":true}""", "password" },
        { """{"email":"a@example.com","name":"A","password":"password123","ageAttestation":true}""", "password" },
        { $$"""{"email":"a@example.com","name":"A","password":"{{new string('x', 40) + new string('é', 17)}}","ageAttestation":true}""", "password" },
        { """{"email":"a@example.com","name":"A","password":"a sturdy passphrase","ageAttestation":false}""", "ageAttestation" },
        { """{"email":"a@example.com","name":"A","password":"a sturdy passphrase"}""", "ageAttestation" },
        { """{"email":"a@example.com","name":"A","password":"a sturdy passphrase","ageAttestation":true,"dateOfBirth":"2015-01-01"}""", "dateOfBirth" },
    };

    [Theory]
    [MemberData(nameof(BadSignUps))]
    public async Task Bad_sign_ups_name_the_field_and_create_nothing(string body, string field)
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var client = sluice.Anonymous();

        var response = await client.PostAsync("/api/v1/auth/signup", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), problem.ToString());
        await using var db = database.CreateContext();
        Assert.Equal(1, await db.Users.CountAsync()); // only the bootstrapped operator
    }

    [Fact]
    public async Task An_over_long_password_is_refused_with_a_clear_message_never_truncated()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var client = sluice.Anonymous();

        var response = await client.PostAsJsonAsync("/api/v1/auth/signup", new { email = "a@example.com", name = "A", password = new string('z', 73), ageAttestation = true });

        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains("72 bytes", problem.GetProperty("errors").GetProperty("password")[0].GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_duplicate_email_is_a_conflict_on_the_email_field_whatever_its_case()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        await sluice.SignUpAndLoginAsync("taken@example.com");
        using var client = sluice.Anonymous();

        var response = await client.PostAsJsonAsync("/api/v1/auth/signup", new { email = " Taken@Example.COM", name = "B", password = SluiceFactory.Password, ageAttestation = true });

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.True((await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("errors").TryGetProperty("email", out _));
    }

    [Fact]
    public async Task A_malformed_body_gets_a_problem_not_a_crash()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var client = sluice.Anonymous();

        var response = await client.PostAsync("/api/v1/auth/signup", new StringContent("{\"email\": ", System.Text.Encoding.UTF8, "application/json"));
        var wrongType = await client.PostAsync("/api/v1/auth/login", new StringContent("{\"email\": 5}", System.Text.Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.BadRequest, wrongType.StatusCode);
    }

    [Fact]
    public async Task Sign_in_sets_only_an_HttpOnly_SameSite_Lax_session_cookie_and_sign_out_ends_the_session()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        using var signUp = sluice.Anonymous();
        await signUp.PostAsJsonAsync("/api/v1/auth/signup", new { email = "p@example.com", name = "P", password = SluiceFactory.Password, ageAttestation = true });
        using var raw = sluice.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { HandleCookies = false });

        var login = await raw.PostAsJsonAsync("/api/v1/auth/login", new { email = "p@example.com", password = SluiceFactory.Password });

        var cookie = Assert.Single(login.Headers.GetValues("Set-Cookie"));
        Assert.StartsWith("sluice_session=", cookie, StringComparison.Ordinal);
        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=lax", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("secure", cookie, StringComparison.OrdinalIgnoreCase); // plain HTTP here; HTTPS adds Secure
        var sessionCookie = cookie.Split(';')[0];

        using var me = new HttpRequestMessage(HttpMethod.Get, "/api/v1/me") { Headers = { { "Cookie", sessionCookie } } };
        Assert.Equal(HttpStatusCode.OK, (await raw.SendAsync(me)).StatusCode);
        using var logout = new HttpRequestMessage(HttpMethod.Post, "/api/v1/auth/logout") { Headers = { { "Cookie", sessionCookie } } };
        Assert.Equal(HttpStatusCode.NoContent, (await raw.SendAsync(logout)).StatusCode);
        using var replay = new HttpRequestMessage(HttpMethod.Get, "/api/v1/me") { Headers = { { "Cookie", sessionCookie } } };
        Assert.Equal(HttpStatusCode.Unauthorized, (await raw.SendAsync(replay)).StatusCode);
    }

    [Fact]
    public async Task Failed_and_successful_sign_ins_are_recorded_as_metadata_without_the_typed_email()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (_, userId) = await sluice.SignUpAndLoginAsync("q@example.com");
        using var client = sluice.Anonymous();
        client.DefaultRequestHeaders.UserAgent.ParseAdd("canary-agent/1.0");

        var wrong = await client.PostAsJsonAsync("/api/v1/auth/login", new { email = "q@example.com", password = "not the password" });
        var unknown = await client.PostAsJsonAsync("/api/v1/auth/login", new { email = "typo-in-address@example.com", password = "whatever it is" });

        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);
        Assert.Equal(
            (await wrong.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString(),
            (await unknown.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString());
        await using var db = database.CreateContext();
        var events = await db.LoginEvents.ToListAsync();
        Assert.Contains(events, e => e.UserId == userId && e.Outcome == "success");
        Assert.Contains(events, e => e.UserId == userId && e.Outcome == "wrong_password" && e.UserAgent == "canary-agent/1.0");
        Assert.Contains(events, e => e.UserId == null && e.Outcome == "unknown_account");
        var everything = string.Join("|", events.Select(e => $"{e.IpAddress} {e.UserAgent} {e.Outcome}"));
        Assert.DoesNotContain("typo-in-address", everything, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sign_in_is_throttled_per_account_with_Retry_After()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Identity:LoginAttemptsPerAccount"] = "3" });
        await sluice.SignUpAndLoginAsync("r@example.com"); // attempt 1
        using var client = sluice.Anonymous();

        await client.PostAsJsonAsync("/api/v1/auth/login", new { email = "r@example.com", password = "wrong wrong wrong" });
        await client.PostAsJsonAsync("/api/v1/auth/login", new { email = "r@example.com", password = "wrong wrong wrong" });
        var throttled = await client.PostAsJsonAsync("/api/v1/auth/login", new { email = "r@example.com", password = SluiceFactory.Password });
        var otherAccount = await client.PostAsJsonAsync("/api/v1/auth/login", new { email = "someone-else@example.com", password = "x" });

        Assert.Equal(HttpStatusCode.TooManyRequests, throttled.StatusCode);
        Assert.True(throttled.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        Assert.Equal(HttpStatusCode.Unauthorized, otherAccount.StatusCode);
    }

    [Fact]
    public async Task Sign_in_is_throttled_per_address_across_accounts()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Identity:LoginAttemptsPerIp"] = "4" });
        using var client = sluice.Anonymous();

        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 6; i++)
        {
            statuses.Add((await client.PostAsJsonAsync("/api/v1/auth/login", new { email = $"user{i}@example.com", password = "guess guess" })).StatusCode);
        }

        Assert.Equal([HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized,
            HttpStatusCode.TooManyRequests, HttpStatusCode.TooManyRequests], statuses);
    }

    [Fact]
    public async Task Changing_the_password_ends_the_other_sessions()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database);
        var (first, _) = await sluice.SignUpAndLoginAsync("s@example.com");
        using var second = sluice.Anonymous();
        await second.PostAsJsonAsync("/api/v1/auth/login", new { email = "s@example.com", password = SluiceFactory.Password });

        var wrongCurrent = await first.PostAsJsonAsync("/api/v1/me/password", new { currentPassword = "nope nope nope", newPassword = "another sturdy phrase" });
        var changed = await first.PostAsJsonAsync("/api/v1/me/password", new { currentPassword = SluiceFactory.Password, newPassword = "another sturdy phrase" });

        Assert.Equal(HttpStatusCode.BadRequest, wrongCurrent.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, changed.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await first.GetAsync("/api/v1/me")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await second.GetAsync("/api/v1/me")).StatusCode);
        using var fresh = sluice.Anonymous();
        Assert.Equal(HttpStatusCode.OK, (await fresh.PostAsJsonAsync("/api/v1/auth/login", new { email = "s@example.com", password = "another sturdy phrase" })).StatusCode);
    }

    [Fact]
    public async Task Sign_up_can_be_closed_by_the_operator()
    {
        await using var database = await TestDatabase.CreateAsync(DatabaseProvider.Sqlite);
        await using var sluice = new SluiceFactory(database, new Dictionary<string, string?> { ["Identity:AllowSignUp"] = "false" });
        using var client = sluice.Anonymous();

        var response = await client.PostAsJsonAsync("/api/v1/auth/signup", new { email = "t@example.com", name = "T", password = SluiceFactory.Password, ageAttestation = true });

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }
}
