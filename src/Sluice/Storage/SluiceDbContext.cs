using Microsoft.EntityFrameworkCore;
using Sluice.Identity;

namespace Sluice.Storage;

/// <summary>The one database of a Sluice installation. Each feature configures its own entities.</summary>
public sealed class SluiceDbContext(DbContextOptions<SluiceDbContext> options) : DbContext(options)
{
    public DbSet<User> Users => Set<User>();

    public DbSet<Organization> Organizations => Set<Organization>();

    public DbSet<Membership> Memberships => Set<Membership>();

    public DbSet<Invitation> Invitations => Set<Invitation>();

    public DbSet<Session> Sessions => Set<Session>();

    public DbSet<LoginEvent> LoginEvents => Set<LoginEvent>();

    public DbSet<ApiKey> ApiKeys => Set<ApiKey>();

    protected override void ConfigureConventions(ModelConfigurationBuilder configurationBuilder)
    {
        if (Database.IsSqlite())
        {
            // SQLite has no timestamp type EF can order or compare; store UTC microseconds since 1970 instead.
            configurationBuilder.Properties<DateTimeOffset>().HaveConversion<UnixMicrosecondsConverter>();
        }
        else
        {
            // PostgreSQL's timestamptz takes UTC only; any offset the application uses is normalised on write.
            configurationBuilder.Properties<DateTimeOffset>().HaveConversion<UtcConverter>();
        }
    }

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(SluiceDbContext).Assembly);
        SnakeCaseNames.Apply(modelBuilder);
    }
}
