using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>The double-entry ledger (accounts, transactions, entries; the last two append-only) and versioned route prices.</summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261122140000_Billing")]
internal sealed class M20261122140000_Billing : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "ledger_accounts",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                organization_id = table.Column<Guid>(nullable: true),
                type = table.Column<string>(maxLength: 32, nullable: false),
                currency = table.Column<string>(maxLength: 3, nullable: false),
                balance_micros = table.Column<long>(nullable: false),
                created_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_ledger_accounts", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_ledger_accounts_organization_id_type_currency", table: "ledger_accounts",
            columns: ["organization_id", "type", "currency"], unique: true);

        migrationBuilder.CreateTable(
            name: "ledger_transactions",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                idempotency_key = table.Column<string>(maxLength: 200, nullable: false),
                request_hash = table.Column<string>(maxLength: 64, nullable: false),
                type = table.Column<string>(maxLength: 32, nullable: false),
                organization_id = table.Column<Guid>(nullable: true),
                reference = table.Column<string>(maxLength: 200, nullable: true),
                actor = table.Column<string>(maxLength: 64, nullable: false),
                created_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_ledger_transactions", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_ledger_transactions_idempotency_key", table: "ledger_transactions", column: "idempotency_key", unique: true);
        migrationBuilder.CreateIndex(name: "ix_ledger_transactions_organization_id_created_at", table: "ledger_transactions", columns: ["organization_id", "created_at"]);

        migrationBuilder.CreateTable(
            name: "ledger_entries",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                transaction_id = table.Column<Guid>(nullable: false),
                account_id = table.Column<Guid>(nullable: false),
                amount_micros = table.Column<long>(nullable: false),
                created_at = table.Timestamp(migrationBuilder),
            },
            constraints: table =>
            {
                table.PrimaryKey("pk_ledger_entries", x => x.id);
                table.ForeignKey("fk_ledger_entries_ledger_transactions_transaction_id", x => x.transaction_id, "ledger_transactions", "id", onDelete: ReferentialAction.Restrict);
                table.ForeignKey("fk_ledger_entries_ledger_accounts_account_id", x => x.account_id, "ledger_accounts", "id", onDelete: ReferentialAction.Restrict);
            });
        migrationBuilder.CreateIndex(name: "ix_ledger_entries_transaction_id", table: "ledger_entries", column: "transaction_id");
        migrationBuilder.CreateIndex(name: "ix_ledger_entries_account_id", table: "ledger_entries", column: "account_id");

        migrationBuilder.CreateTable(
            name: "route_prices",
            columns: table => new
            {
                id = table.Column<Guid>(nullable: false),
                route_id = table.Column<Guid>(nullable: false),
                input_per_million_micros = table.Column<long>(nullable: false),
                output_per_million_micros = table.Column<long>(nullable: false),
                cached_input_per_million_micros = table.Column<long>(nullable: false),
                request_fee_micros = table.Column<long>(nullable: false),
                effective_from = table.Timestamp(migrationBuilder),
                created_at = table.Timestamp(migrationBuilder),
            },
            constraints: table => table.PrimaryKey("pk_route_prices", x => x.id));
        migrationBuilder.CreateIndex(name: "ix_route_prices_route_id_effective_from", table: "route_prices", columns: ["route_id", "effective_from"]);

        // Billing records are kept (C12): transactions and entries are never changed or removed.
        if (migrationBuilder.IsSqlite())
        {
            foreach (var table in new[] { "ledger_transactions", "ledger_entries" })
            {
                migrationBuilder.Sql($"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;");
                migrationBuilder.Sql($"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;");
            }
        }
        else
        {
            migrationBuilder.Sql("""
                CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions FOR EACH ROW EXECUTE FUNCTION audit_append_only();
                CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE ON ledger_transactions FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
                CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries FOR EACH ROW EXECUTE FUNCTION audit_append_only();
                CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
                """);
        }
    }
}
