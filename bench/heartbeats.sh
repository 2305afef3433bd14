#!/usr/bin/env bash
# The compute plane at scale, by simulation: a throwaway PostgreSQL, two `sluice serve` replicas on it, and
# bench/MachineSimulator driving N machines (join with their own join token, then a heartbeat with telemetry every
# interval, alternating replicas). Measures heartbeat latency and rate, PostgreSQL's load (pg_stat_database deltas and
# its processes' CPU time) and the gateway's hot path (/v1/chat/completions through replica A to the mock upstream, wrk
# c=16) without and then with the heartbeat load, in the same run. Binds 127.0.0.1 only; stops what it started; writes
# the result into docs/benchmarks.md between its markers.
#
#   bench/heartbeats.sh [--machines 10000] [--interval 10] [--measure SECONDS] [--no-write]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

machines=10000 interval=10 measure=20 write_doc=true
while [[ $# -gt 0 ]]; do
  case "$1" in
    --machines) machines="$2"; shift 2 ;;
    --interval) interval="$2"; shift 2 ;;
    --measure) measure="$2"; shift 2 ;;
    --no-write) write_doc=false; shift ;;
    *) echo "usage: bench/heartbeats.sh [--machines N] [--interval SECONDS] [--measure SECONDS] [--no-write]" >&2; exit 2 ;;
  esac
done

work="$root/bench/.work/heartbeats"
rm -rf "$work"; mkdir -p "$work"
mock_port=18081 port_a=18090 port_b=18091
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  declare -F postgres_stop >/dev/null && postgres_stop
}
trap cleanup EXIT

for port in $mock_port $port_a $port_b; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "bench: port $port is in use; stop what listens there first" >&2; exit 1; fi
done
command -v wrk >/dev/null || { echo "bench: wrk is needed (Debian package wrk)" >&2; exit 1; }
echo "bench: building (Release)" >&2
dotnet build src/Sluice/Sluice.csproj -c Release --nologo -v quiet >/dev/null
dotnet build bench/MockUpstream/MockUpstream.csproj -c Release --nologo -v quiet >/dev/null
dotnet build bench/MachineSimulator/MachineSimulator.csproj -c Release --nologo -v quiet >/dev/null
sluice_bin="$root/src/Sluice/bin/Release/net10.0/sluice"
mock_bin="$root/bench/MockUpstream/bin/Release/net10.0/mock-upstream"
sim_bin="$root/bench/MachineSimulator/bin/Release/net10.0/machine-simulator"
# shellcheck source=lib.sh
source "$root/bench/lib.sh"
# shellcheck source=../scripts/postgres.sh
source "$root/scripts/postgres.sh"
postgres_start
database="$SLUICE_TEST_POSTGRES"
pg_port="$(sed -E 's/.*Port=([0-9]+).*/\1/' <<<"$database")"
psql_() { "${SLUICE_PG_RUN[@]}" "$SLUICE_PG_BIN/psql" -h 127.0.0.1 -p "$pg_port" -U sluice -d postgres -At -F ' ' -c "$1"; }
pg_stats() { psql_ "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted, blks_read FROM pg_stat_database WHERE datname = 'postgres'"; }
pg_cpu() { # CPU seconds of every PostgreSQL process, with its exited children (backends)
  local pid total=0
  for pid in $(pgrep -u postgres postgres || true); do
    total="$(awk -v t="$total" '{ printf "%.2f", t + ($14 + $15 + $16 + $17) / 100 }' "/proc/$pid/stat" 2>/dev/null || echo "$total")"
  done
  echo "$total"
}
proc_cpu() { awk '{ printf "%.2f\n", ($14 + $15) / 100 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

MOCK_PORT=$mock_port MOCK_CHUNKS=20 "$mock_bin" >"$work/mock.log" 2>&1 & pids+=($!)
for _ in $(seq 1 150); do curl -fs -o /dev/null -X POST -d '{}' "http://127.0.0.1:$mock_port/v1/embeddings" && break; sleep 0.2; done

cli() { "$sluice_bin" "$@" --data-dir "$work/data" --database "$database" --log-format text; }
cli migrate >/dev/null
org="$(cli orgs create --name bench | grep -oE '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' | head -1)"
MOCK_KEY=sk-mock cli providers add --name mock --kind openai-compatible --base-url "http://127.0.0.1:$mock_port/v1" --api-key-env MOCK_KEY >/dev/null
cli models add bench >/dev/null
route="$(cli models route bench --provider mock --upstream-model mock --retains-data false --trains-on-data false \
  | grep -oE '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' | head -1)"
cli prices set --route "$route" --input 0.15 --output 0.60 >/dev/null
cli wallet credit --org "$org" --amount 1000000 --reason benchmark >/dev/null
key="$(cli keys create --org "$org" --name bench --rpm 100000000 --tpm 1000000000 | grep -oE 'sk-sluice-[A-Za-z0-9]+')"

# Replica A first: its first start creates the operator and prints the credentials once.
serve() { exec "$sluice_bin" serve --urls "http://127.0.0.1:$1" --data-dir "$work/data" --database "$database" --set "Identity:PasswordHashCost=10"; }
serve $port_a >"$work/replica-a.log" 2>&1 & pid_a=$!; pids+=($pid_a)
wait_for "http://127.0.0.1:$port_a/readyz"
serve $port_b >"$work/replica-b.log" 2>&1 & pid_b=$!; pids+=($pid_b)
wait_for "http://127.0.0.1:$port_b/readyz"
export SIM_OPERATOR_EMAIL SIM_OPERATOR_PASSWORD
SIM_OPERATOR_EMAIL="$(awk '/account:/ { print $2; exit }' "$work/replica-a.log")"
SIM_OPERATOR_PASSWORD="$(awk '/password:/ { print $2; exit }' "$work/replica-a.log")"

lua="$work/chat.lua"
cat >"$lua" <<LUA
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
wrk.body = [[{"model":"bench","messages":[{"role":"user","content":"Say hello."}],"max_tokens":64}]]
LUA
gateway() { # prints "rps p50_us p99_us errors"
  wrk -t2 -c16 -d"${measure}s" --latency -s "$lua" "http://127.0.0.1:$port_a" 2>&1 | awk '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return (v + 0) * 1000; if (v ~ /s$/) return (v + 0) * 1000000; return v + 0 }
    $1 == "50%" { p50 = us($2) } $1 == "99%" { p99 = us($2) }
    /^Requests\/sec:/ { rps = $2 } /Non-2xx/ { errors += $NF } /Socket errors/ { errors += 1 }
    END { printf "%.0f %.0f %.0f %d\n", rps, p50, p99, errors }'
}
window() { # label command...: runs the command, prints "label <its output> <db deltas> <cpu deltas> start_ms end_ms"
  local label="$1"; shift
  local s0 c0 a0 b0 out s1 c1 a1 b1 t0 t1
  t0="$(date +%s%3N)"; s0="$(pg_stats)"; c0="$(pg_cpu)"; a0="$(proc_cpu $pid_a)"; b0="$(proc_cpu $pid_b)"
  out="$("$@")"
  s1="$(pg_stats)"; c1="$(pg_cpu)"; a1="$(proc_cpu $pid_a)"; b1="$(proc_cpu $pid_b)"; t1="$(date +%s%3N)"
  echo "$label $out $(paste -d' ' <(tr ' ' '\n' <<<"$s0") <(tr ' ' '\n' <<<"$s1") | awk -v d="$measure" '{ printf "%.0f ", ($2 - $1) / d }') \
$(awk -v a="$c0" -v b="$c1" -v d="$measure" 'BEGIN { printf "%.2f", (b - a) / d }') \
$(awk -v a="$a0" -v b="$a1" -v d="$measure" 'BEGIN { printf "%.2f", (b - a) / d }') \
$(awk -v a="$b0" -v b="$b1" -v d="$measure" 'BEGIN { printf "%.2f", (b - a) / d }') $t0 $t1"
}
idle() { sleep "$measure"; echo "0 0 0 0"; }

echo "bench: warming the gateway" >&2
wrk -t2 -c16 -d15s -s "$lua" "http://127.0.0.1:$port_a" >/dev/null 2>&1
results="$work/results.txt"
: >"$results"
echo "bench: gateway alone, ${measure} s" >&2
window alone gateway >>"$results"

echo "bench: simulator: $machines machines every ${interval} s" >&2
"$sim_bin" --servers "http://127.0.0.1:$port_a,http://127.0.0.1:$port_b" --machines "$machines" --interval "$interval" \
  --duration $((interval + 2 * measure + 5)) --latency-log "$work/latency.log" >"$work/simulator.log" 2>&1 & sim_pid=$!; pids+=($sim_pid)
until grep -q '^joined:' "$work/simulator.log"; do
  kill -0 $sim_pid 2>/dev/null || { cat "$work/simulator.log" >&2; exit 1; }
  sleep 1
done
sleep "$interval" # every machine has sent its first heartbeat (with its inventory)
echo "bench: heartbeats alone, ${measure} s" >&2
window heartbeats idle >>"$results"
echo "bench: gateway under the heartbeat load, ${measure} s" >&2
window both gateway >>"$results"
wait $sim_pid || true
cat "$work/simulator.log" >&2
echo "bench: gateway again, the simulator stopped, ${measure} s" >&2
window after gateway >>"$results"
# Heartbeats that ended inside each window: "count rate p50_ms p99_ms failed".
heartbeat_window() {
  local failed
  failed="$(awk -v a="$1" -v b="$2" '$1 >= a && $1 < b && $3 == 0' "$work/latency.log" | wc -l)"
  awk -v a="$1" -v b="$2" '$1 >= a && $1 < b && $3 == 1 { print $2 }' "$work/latency.log" | sort -n \
    | awk -v ms="$(($2 - $1))" -v f="$failed" '{ v[NR] = $1 }
      END { if (NR == 0) { print "0 0 - - " f; exit } printf "%d %.0f %.1f %.1f %d\n", NR, NR / (ms / 1000), v[int(NR * 0.5) + 1] / 1000, v[int(NR * 0.99) + 1] / 1000, f }'
}
pipeline_a="$(curl -s "http://127.0.0.1:$port_a/readyz" | grep -oE '"telemetry":\{[^}]*\}' || true)"
echo "replica A telemetry: $pipeline_a" >&2
samples="$(psql_ "SELECT count(*) FROM machine_telemetry_samples")"
gpu_samples="$(psql_ "SELECT count(*) FROM gpu_telemetry_samples")"

report="$work/report.md"
cpu="$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
{
  echo "Run on $(date -u +%Y-%m-%d) by \`bench/heartbeats.sh --machines $machines --interval $interval --measure $measure\`: $(nproc) vCPU ($cpu), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), PostgreSQL 15, two replicas, the simulator, wrk and the mock all on the same cores."
  echo
  grep -E '^(tokens|joined|tasks|heartbeats):' "$work/simulator.log" | sed 's/^/    /'
  echo
  echo "Stored by the end: $samples machine samples, $gpu_samples GPU samples."
  echo
  echo "| window | gateway req/s | gateway p50 | gateway p99 | gateway errors | heartbeats/s | heartbeat p50 | heartbeat p99 | heartbeat errors | PG commits/s | PG rows inserted/s | PG rows updated/s | PG CPU (cores) | replica A CPU | replica B CPU |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  while read -r line; do
    read -r -a f <<<"$line"
    read -r -a h <<<"$(heartbeat_window "${f[13]}" "${f[14]}")"
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n" "${f[0]}" \
      "$([[ ${f[1]} == 0 ]] && echo - || echo "${f[1]}")" "$([[ ${f[2]} == 0 ]] && echo - || echo "${f[2]} µs")" \
      "$([[ ${f[3]} == 0 ]] && echo - || echo "${f[3]} µs")" "$([[ ${f[1]} == 0 ]] && echo - || echo "${f[4]}")" \
      "${h[1]}" "$([[ ${h[2]} == - ]] && echo - || echo "${h[2]} ms")" "$([[ ${h[3]} == - ]] && echo - || echo "${h[3]} ms")" "${h[4]}" \
      "${f[5]}" "${f[6]}" "${f[7]}" "${f[10]}" "${f[11]}" "${f[12]}"
  done <"$results"
} >"$report"
cat "$report"
if $write_doc; then write_doc_section heartbeats "$report"; fi
