using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>
/// The audit log: entries, signed checkpoints and the hashes kept for pruned entries, with triggers that make all
/// three append-only. Entries may be deleted only below the prefix whose hashes are kept, which the pruning path
/// records first and which must end at a signed checkpoint.
/// </summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261122120000_Audit")]
internal sealed class M20261122120000_Audit : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "audit_entries",
            columns: table => new
            {
                seq = table.Column<long>(nullable: false),
                time = table.Timestamp(migrationBuilder),
                actor = table.Column<string>(maxLength: 64, nullable: false),
                organization_id = table.Column<Guid>(nullable: true),
                action = table.Column<string>(maxLength: 64, nullable: false),
                target = table.Column<string>(maxLength: 128, nullable: false),
                outcome = table.Column<string>(maxLength: 16, nullable: false),
                source_network = table.Column<string>(maxLength: 64, nullable: true),
            },
            constraints: table => table.PrimaryKey("pk_audit_entries", x => x.seq));
        migrationBuilder.CreateIndex(name: "ix_audit_entries_organization_id_seq", table: "audit_entries", columns: ["organization_id", "seq"]);
        migrationBuilder.CreateIndex(name: "ix_audit_entries_time", table: "audit_entries", column: "time");

        migrationBuilder.CreateTable(
            name: "audit_checkpoints",
            columns: table => new
            {
                tree_size = table.Column<long>(nullable: false),
                root_hash = table.Column<string>(maxLength: 64, nullable: false),
                note = table.Column<string>(maxLength: 2000, nullable: false),
                created_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_audit_checkpoints", x => x.tree_size));

        migrationBuilder.CreateTable(
            name: "audit_pruned_subtrees",
            columns: table => new
            {
                prefix_size = table.Column<long>(nullable: false),
                start = table.Column<long>(nullable: false),
                size = table.Column<long>(nullable: false),
                hash = table.Column<string>(maxLength: 64, nullable: false),
            },
            constraints: table => table.PrimaryKey("pk_audit_pruned_subtrees", x => new { x.prefix_size, x.start }));

        if (migrationBuilder.IsSqlite())
        {
            foreach (var table in new[] { "audit_entries", "audit_checkpoints", "audit_pruned_subtrees" })
            {
                migrationBuilder.Sql($"""
                    CREATE TRIGGER {table}_append_only BEFORE UPDATE ON {table}
                    BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;
                    """);
            }

            foreach (var table in new[] { "audit_checkpoints", "audit_pruned_subtrees" })
            {
                migrationBuilder.Sql($"""
                    CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
                    BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;
                    """);
            }

            migrationBuilder.Sql("""
                CREATE TRIGGER audit_entries_prune_below_checkpoint BEFORE DELETE ON audit_entries
                WHEN OLD.seq >= (SELECT coalesce(max(prefix_size), 0) FROM audit_pruned_subtrees)
                BEGIN SELECT RAISE(ABORT, 'audit entries can be deleted only below a signed checkpoint whose hashes are kept'); END;
                """);
            migrationBuilder.Sql("""
                CREATE TRIGGER audit_pruned_subtrees_at_checkpoint BEFORE INSERT ON audit_pruned_subtrees
                WHEN NOT EXISTS (SELECT 1 FROM audit_checkpoints WHERE tree_size = NEW.prefix_size)
                BEGIN SELECT RAISE(ABORT, 'entries can be pruned only up to a signed checkpoint'); END;
                """);
        }
        else
        {
            migrationBuilder.Sql("""
                CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$;

                CREATE FUNCTION audit_entries_prune_below_checkpoint() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                  IF OLD.seq >= (SELECT coalesce(max(prefix_size), 0) FROM audit_pruned_subtrees) THEN
                    RAISE EXCEPTION 'audit entries can be deleted only below a signed checkpoint whose hashes are kept';
                  END IF;
                  RETURN OLD;
                END $$;

                CREATE FUNCTION audit_pruned_subtrees_at_checkpoint() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                  IF NOT EXISTS (SELECT 1 FROM audit_checkpoints WHERE tree_size = NEW.prefix_size) THEN
                    RAISE EXCEPTION 'entries can be pruned only up to a signed checkpoint';
                  END IF;
                  RETURN NEW;
                END $$;

                CREATE TRIGGER audit_entries_append_only BEFORE UPDATE ON audit_entries FOR EACH ROW EXECUTE FUNCTION audit_append_only();
                CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
                CREATE TRIGGER audit_entries_prune_below_checkpoint BEFORE DELETE ON audit_entries FOR EACH ROW EXECUTE FUNCTION audit_entries_prune_below_checkpoint();
                CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints FOR EACH ROW EXECUTE FUNCTION audit_append_only();
                CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
                CREATE TRIGGER audit_pruned_subtrees_append_only BEFORE UPDATE OR DELETE ON audit_pruned_subtrees FOR EACH ROW EXECUTE FUNCTION audit_append_only();
                CREATE TRIGGER audit_pruned_subtrees_no_truncate BEFORE TRUNCATE ON audit_pruned_subtrees FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
                CREATE TRIGGER audit_pruned_subtrees_at_checkpoint BEFORE INSERT ON audit_pruned_subtrees FOR EACH ROW EXECUTE FUNCTION audit_pruned_subtrees_at_checkpoint();
                """);
        }
    }
}
