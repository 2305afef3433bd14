using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Sluice.Storage.Migrations;

/// <summary>
/// Machine telemetry: raw samples per machine and per GPU, keyed by (machine_id, at) and indexed by at; hourly rollups.
/// On PostgreSQL the raw tables are range-partitioned by day on at: retention drops whole days, and the telemetry
/// maintenance creates each day's partitions ahead (Compute/Telemetry/TelemetryPartitions).
/// </summary>
[DbContext(typeof(SluiceDbContext))]
[Migration("20261129200000_Telemetry")]
internal sealed class M20261129200000_Telemetry : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        if (migrationBuilder.IsSqlite())
        {
            migrationBuilder.CreateTable(
                name: "machine_telemetry_samples",
                columns: table => new
                {
                    machine_id = table.Column<string>(maxLength: 64, nullable: false),
                    at = table.Timestamp(migrationBuilder),
                    cpu_percent = table.Column<double>(nullable: true),
                    load1 = table.Column<double>(nullable: true),
                    memory_used_bytes = table.Column<long>(nullable: true),
                    memory_total_bytes = table.Column<long>(nullable: true),
                    disk_used_bytes = table.Column<long>(nullable: true),
                    disk_total_bytes = table.Column<long>(nullable: true),
                    gpu_count = table.Column<int>(nullable: false),
                },
                constraints: table => table.PrimaryKey("pk_machine_telemetry_samples", x => new { x.machine_id, x.at }));

            migrationBuilder.CreateTable(
                name: "gpu_telemetry_samples",
                columns: table => new
                {
                    machine_id = table.Column<string>(maxLength: 64, nullable: false),
                    at = table.Timestamp(migrationBuilder),
                    gpu_index = table.Column<int>(nullable: false),
                    gpu_uuid = table.Column<string>(maxLength: 64, nullable: true),
                    memory_used_mib = table.Column<long>(nullable: true),
                    memory_total_mib = table.Column<long>(nullable: true),
                    utilization_percent = table.Column<double>(nullable: true),
                    temperature_c = table.Column<double>(nullable: true),
                    power_draw_w = table.Column<double>(nullable: true),
                    xid_errors = table.Column<long>(nullable: true),
                    ecc_errors = table.Column<long>(nullable: true),
                },
                constraints: table => table.PrimaryKey("pk_gpu_telemetry_samples", x => new { x.machine_id, x.at, x.gpu_index }));
        }
        else
        {
            // Partitioned by day; no default partition, so a row for a day without its partition is refused rather than
            // landing where retention would never drop it. The partitions themselves are created at run time.
            migrationBuilder.Sql("""
                CREATE TABLE machine_telemetry_samples (
                    machine_id character varying(64) NOT NULL,
                    at timestamp with time zone NOT NULL,
                    cpu_percent double precision NULL,
                    load1 double precision NULL,
                    memory_used_bytes bigint NULL,
                    memory_total_bytes bigint NULL,
                    disk_used_bytes bigint NULL,
                    disk_total_bytes bigint NULL,
                    gpu_count integer NOT NULL,
                    CONSTRAINT pk_machine_telemetry_samples PRIMARY KEY (machine_id, at)
                ) PARTITION BY RANGE (at);
                """);
            migrationBuilder.Sql("""
                CREATE TABLE gpu_telemetry_samples (
                    machine_id character varying(64) NOT NULL,
                    at timestamp with time zone NOT NULL,
                    gpu_index integer NOT NULL,
                    gpu_uuid character varying(64) NULL,
                    memory_used_mib bigint NULL,
                    memory_total_mib bigint NULL,
                    utilization_percent double precision NULL,
                    temperature_c double precision NULL,
                    power_draw_w double precision NULL,
                    xid_errors bigint NULL,
                    ecc_errors bigint NULL,
                    CONSTRAINT pk_gpu_telemetry_samples PRIMARY KEY (machine_id, at, gpu_index)
                ) PARTITION BY RANGE (at);
                """);
        }

        migrationBuilder.CreateIndex(name: "ix_machine_telemetry_samples_at", table: "machine_telemetry_samples", column: "at");
        migrationBuilder.CreateIndex(name: "ix_gpu_telemetry_samples_at", table: "gpu_telemetry_samples", column: "at");

        migrationBuilder.CreateTable(
            name: "machine_telemetry_hours",
            columns: table => new
            {
                machine_id = table.Column<string>(maxLength: 64, nullable: false),
                hour = table.Timestamp(migrationBuilder),
                samples = table.Column<int>(nullable: false),
                cpu_percent_min = table.Column<double>(nullable: true),
                cpu_percent_avg = table.Column<double>(nullable: true),
                cpu_percent_max = table.Column<double>(nullable: true),
                load1_min = table.Column<double>(nullable: true),
                load1_avg = table.Column<double>(nullable: true),
                load1_max = table.Column<double>(nullable: true),
                memory_used_bytes_min = table.Column<long>(nullable: true),
                memory_used_bytes_avg = table.Column<long>(nullable: true),
                memory_used_bytes_max = table.Column<long>(nullable: true),
                memory_total_bytes = table.Column<long>(nullable: true),
                disk_used_bytes_min = table.Column<long>(nullable: true),
                disk_used_bytes_avg = table.Column<long>(nullable: true),
                disk_used_bytes_max = table.Column<long>(nullable: true),
                disk_total_bytes = table.Column<long>(nullable: true),
                gpu_count_max = table.Column<int>(nullable: false),
            },
            constraints: table => table.PrimaryKey("pk_machine_telemetry_hours", x => new { x.machine_id, x.hour }));
        migrationBuilder.CreateIndex(name: "ix_machine_telemetry_hours_hour", table: "machine_telemetry_hours", column: "hour");

        migrationBuilder.CreateTable(
            name: "gpu_telemetry_hours",
            columns: table => new
            {
                machine_id = table.Column<string>(maxLength: 64, nullable: false),
                hour = table.Timestamp(migrationBuilder),
                gpu_index = table.Column<int>(nullable: false),
                samples = table.Column<int>(nullable: false),
                memory_used_mib_min = table.Column<long>(nullable: true),
                memory_used_mib_avg = table.Column<long>(nullable: true),
                memory_used_mib_max = table.Column<long>(nullable: true),
                memory_total_mib = table.Column<long>(nullable: true),
                utilization_percent_min = table.Column<double>(nullable: true),
                utilization_percent_avg = table.Column<double>(nullable: true),
                utilization_percent_max = table.Column<double>(nullable: true),
                temperature_c_min = table.Column<double>(nullable: true),
                temperature_c_avg = table.Column<double>(nullable: true),
                temperature_c_max = table.Column<double>(nullable: true),
                power_draw_w_min = table.Column<double>(nullable: true),
                power_draw_w_avg = table.Column<double>(nullable: true),
                power_draw_w_max = table.Column<double>(nullable: true),
                xid_errors_max = table.Column<long>(nullable: true),
                ecc_errors_max = table.Column<long>(nullable: true),
            },
            constraints: table => table.PrimaryKey("pk_gpu_telemetry_hours", x => new { x.machine_id, x.hour, x.gpu_index }));
        migrationBuilder.CreateIndex(name: "ix_gpu_telemetry_hours_hour", table: "gpu_telemetry_hours", column: "hour");
    }
}
