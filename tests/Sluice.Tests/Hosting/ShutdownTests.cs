using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Hosting;
using Sluice.Identity;
using Sluice.Tests.TestSupport;

namespace Sluice.Tests.Hosting;

/// <summary>Stopping (what SIGTERM does) lets in-flight requests finish, for at most Server:ShutdownTimeout.</summary>
public sealed class ShutdownTests
{
    [Fact]
    public async Task An_in_flight_request_completes_while_the_server_stops()
    {
        await using var database = await TestDatabase.CreateAsync(Sluice.Storage.DatabaseProvider.Sqlite);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var app = Build(database, "00:00:30", async context =>
        {
            started.SetResult();
            await release.Task;
            await context.Response.WriteAsync("finished");
        });
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };

        var request = http.GetAsync("/slow");
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var stopping = app.StopAsync();
        await Task.Delay(200);
        Assert.False(stopping.IsCompleted, "the server waits for the in-flight request");
        release.SetResult();

        var response = await request.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("finished", await response.Content.ReadAsStringAsync());
        await stopping.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_request_that_outlives_the_grace_period_is_cut_off_and_the_server_stops()
    {
        await using var database = await TestDatabase.CreateAsync(Sluice.Storage.DatabaseProvider.Sqlite);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var app = Build(database, "00:00:01", async context =>
        {
            started.SetResult();
            await Task.Delay(Timeout.Infinite, context.RequestAborted);
        });
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };

        var request = http.GetAsync("/slow");
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await app.StopAsync().WaitAsync(TimeSpan.FromSeconds(20));

        await Assert.ThrowsAnyAsync<HttpRequestException>(() => request.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    private static WebApplication Build(TestDatabase database, string shutdownTimeout, RequestDelegate slow)
    {
        var builder = SluiceApp.CreateBuilder([], new CommandLineSettings(null, new Dictionary<string, string?>
        {
            ["Server:Urls"] = "http://127.0.0.1:0",
            ["Server:ShutdownTimeout"] = shutdownTimeout,
            ["ConnectionStrings:Sluice"] = database.ConnectionString,
            ["Identity:PasswordHashCost"] = "10",
        }));
        builder.Services.AddSingleton<IOneTimeCredentialWriter>(new CapturingCredentialWriter());
        var app = SluiceApp.Build(builder);
        app.MapGet("/slow", slow).AllowAnonymous();
        return app;
    }
}
