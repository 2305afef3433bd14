using System.Net;
using Microsoft.EntityFrameworkCore;

namespace Sluice.Tests.WebConsole;

/// <summary>The account page: the profile's name and the password (the current one checked; other sessions signed out).</summary>
public sealed class AccountPageTests : IAsyncLifetime
{
    private const string NewPassword = "a-much-longer-new-passphrase-42";

    private ConsoleKit _kit = null!;

    public async ValueTask InitializeAsync() => _kit = await ConsoleKit.StartAsync();

    public async ValueTask DisposeAsync() => await _kit.DisposeAsync();

    [Fact]
    public async Task A_person_renames_themselves_and_an_empty_name_is_refused_beside_the_field()
    {
        using var person = await _kit.SignUpAsync("ada@example.com", "Ada");
        var page = await person.GetAsync("/account");
        Assert.Equal(HttpStatusCode.OK, page.Status);
        Assert.Equal("Ada", page.InputValue("Name"));
        Assert.Contains("ada@example.com", page.Text());

        var saved = await person.SubmitAsync(page, "form[action*='handler=Profile']", new() { ["Name"] = "Ada Lovelace" });
        Assert.Equal("/account?done=profile", saved.Location);
        var after = await person.GetAsync(saved.Location!);
        Assert.Equal("Ada Lovelace", after.InputValue("Name"));
        Assert.Equal("Ada Lovelace", after.Find(".topbar .who")!.TextContent.Trim());

        var refused = await person.SubmitAsync(after, "form[action*='handler=Profile']", new() { ["Name"] = "   " });
        Assert.Equal(HttpStatusCode.OK, refused.Status);
        Assert.NotEmpty(refused.FieldError("Name"));
        Assert.Equal("Ada Lovelace", await _kit.InScopeAsync(db => db.Users.Where(u => u.Email == "ada@example.com").Select(u => u.DisplayName).SingleAsync()));
    }

    [Fact]
    public async Task Changing_the_password_checks_the_current_one_keeps_this_session_and_signs_out_the_others()
    {
        using var person = await _kit.SignUpAsync("ada@example.com", "Ada");
        using var elsewhere = await _kit.SignInAsync("ada@example.com");
        var hash = await PasswordHashAsync();

        var wrong = await person.SubmitAsync(await person.GetAsync("/account"), "form[action*='handler=Password']",
            new() { ["CurrentPassword"] = "not-my-password", ["NewPassword"] = NewPassword });
        Assert.Equal(HttpStatusCode.OK, wrong.Status);
        Assert.NotEmpty(wrong.FieldError("CurrentPassword"));
        Assert.True(string.IsNullOrEmpty(wrong.InputValue("CurrentPassword")) && string.IsNullOrEmpty(wrong.InputValue("NewPassword")), "passwords are never sent back");
        Assert.Equal("Ada", wrong.InputValue("Name"));

        var weak = await person.SubmitAsync(wrong, "form[action*='handler=Password']", new() { ["CurrentPassword"] = ConsoleKit.Password, ["NewPassword"] = "short" });
        Assert.NotEmpty(weak.FieldError("NewPassword"));
        Assert.Equal(hash, await PasswordHashAsync());
        Assert.Equal(HttpStatusCode.OK, (await elsewhere.GetAsync("/account")).Status);

        var changed = await person.SubmitAsync(weak, "form[action*='handler=Password']", new() { ["CurrentPassword"] = ConsoleKit.Password, ["NewPassword"] = NewPassword });
        Assert.Equal("/account?done=password", changed.Location);
        Assert.Contains("other sessions were signed out", (await person.GetAsync(changed.Location!)).Find(".notice")!.TextContent);
        Assert.NotEqual(hash, await PasswordHashAsync());
        Assert.Equal("/signin?returnUrl=%2Faccount", (await elsewhere.GetAsync("/account")).Location);
        using var again = await _kit.SignInAsync("ada@example.com", NewPassword);
        Assert.Equal(HttpStatusCode.OK, (await again.GetAsync("/account")).Status);
    }

    [Fact]
    public async Task A_visitor_is_sent_to_sign_in_and_back()
    {
        using var visitor = _kit.Visitor();
        Assert.Equal("/signin?returnUrl=%2Faccount", (await visitor.GetAsync("/account")).Location);
    }

    private Task<string> PasswordHashAsync() =>
        _kit.InScopeAsync(db => db.Users.Where(u => u.Email == "ada@example.com").Select(u => u.PasswordHash).SingleAsync());
}
