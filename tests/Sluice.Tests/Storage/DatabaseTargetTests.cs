using Npgsql;
using Sluice.Storage;

namespace Sluice.Tests.Storage;

public sealed class DatabaseTargetTests
{
    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    public void Nothing_configured_means_the_embedded_sqlite_file_in_the_data_directory(string? configured)
    {
        var target = DatabaseTarget.Resolve(configured, "some/data");

        Assert.Equal(DatabaseProvider.Sqlite, target.Provider);
        Assert.Equal(Path.GetFullPath("some/data/sluice.db"), target.SqliteFile);
    }

    [Fact]
    public void A_postgres_url_becomes_a_keyword_connection_string_and_its_description_hides_the_password()
    {
        var target = DatabaseTarget.Resolve("postgres://app%40corp:p%3Ass%2Fw0rd@db.example.com:6543/sluice_prod?sslmode=require&Maximum%20Pool%20Size=40", "data");

        Assert.Equal(DatabaseProvider.Postgres, target.Provider);
        var parsed = new NpgsqlConnectionStringBuilder(target.ConnectionString);
        Assert.Equal("app@corp", parsed.Username);
        Assert.Equal("p:ss/w0rd", parsed.Password);
        Assert.Equal("db.example.com", parsed.Host);
        Assert.Equal(6543, parsed.Port);
        Assert.Equal("sluice_prod", parsed.Database);
        Assert.Equal(SslMode.Require, parsed.SslMode);
        Assert.Equal(40, parsed.MaxPoolSize);
        Assert.Equal("sluice", parsed.ApplicationName);
        Assert.Equal("PostgreSQL app@corp@db.example.com:6543/sluice_prod", target.Description);
        Assert.DoesNotContain("w0rd", target.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("postgresql://localhost/sluice", "localhost", 5432, "sluice")]
    [InlineData("postgres://u@[::1]:5433/db", "::1", 5433, "db")]
    [InlineData("Host=10.0.0.5;Port=5544;Database=x;Username=y;Password=z", "10.0.0.5", 5544, "x")]
    [InlineData("Server=pg;Database=x", "pg", 5432, "x")]
    public void Postgres_is_recognised_in_url_and_keyword_form(string configured, string host, int port, string database)
    {
        var target = DatabaseTarget.Resolve(configured, "data");

        Assert.Equal(DatabaseProvider.Postgres, target.Provider);
        var parsed = new NpgsqlConnectionStringBuilder(target.ConnectionString);
        Assert.Equal(host, parsed.Host);
        Assert.Equal(port, parsed.Port);
        Assert.Equal(database, parsed.Database);
    }

    [Theory]
    [InlineData("Data Source=/var/lib/sluice/s.db", "/var/lib/sluice/s.db")]
    [InlineData("sqlite:/var/lib/sluice/s.db", "/var/lib/sluice/s.db")]
    [InlineData("sqlite:///var/lib/sluice/s.db", "/var/lib/sluice/s.db")]
    public void Sqlite_is_recognised_in_keyword_and_url_form(string configured, string file)
    {
        var target = DatabaseTarget.Resolve(configured, "data");

        Assert.Equal(DatabaseProvider.Sqlite, target.Provider);
        Assert.Equal(file, target.SqliteFile);
        Assert.Equal($"SQLite {file}", target.Description);
    }

    [Theory]
    [InlineData("just some words")]
    [InlineData("Nothing=here;Password=s3cr3t-canary")]
    [InlineData("Host=pg;Port=notanumber;Password=s3cr3t-canary")]
    [InlineData("postgres://user:s3cr3t-canary@/nohost")]
    [InlineData("postgres://u:s3cr3t-canary@pg/db?no_such_parameter=1")]
    [InlineData("sqlite:")]
    public void Unusable_values_are_refused_with_a_message_that_never_repeats_the_secret(string configured)
    {
        var error = Assert.Throws<DatabaseConfigurationException>(() => DatabaseTarget.Resolve(configured, "data"));

        Assert.Contains("SLUICE_DATABASE", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cr3t-canary", error.Message, StringComparison.Ordinal);
    }
}
