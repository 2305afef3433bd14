#!/usr/bin/env bash
# The deployment path's cost, measured in one run: `sluice serve` (SQLite) and a real `sluice agent` on this host, a
# deployment whose engine is bench/MockUpstream started by the agent as a custom command (an engine that answers at
# once, so what is measured is the path, not the model). Compares, with wrk on loopback:
#   - the engine called directly (a second MockUpstream on its own port), and
#   - the same request through the gateway → the agent's HTTPS serving endpoint (pinned certificate) → the engine,
# at concurrency 1 and 64 (p50 and p99 added), then cold starts: the engine's own start-up (spawn → first /health 200)
# against a request to a deployment at zero replicas (request → answer), three times each. Binds 127.0.0.1 only; stops
# what it started; writes its table into docs/benchmarks.md between its markers.
#
#   bench/deployments.sh [--measure SECONDS] [--no-write]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

measure=10 write_doc=true
while [[ $# -gt 0 ]]; do
  case "$1" in
    --measure) measure="$2"; shift 2 ;;
    --no-write) write_doc=false; shift ;;
    *) echo "usage: bench/deployments.sh [--measure SECONDS] [--no-write]" >&2; exit 2 ;;
  esac
done

work="$root/bench/.work/deployments"
rm -rf "$work"; mkdir -p "$work"
port=18190 direct_port=18191 serving_port=18192 probe_port=18193
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
for p in $port $direct_port $serving_port $probe_port; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "bench: port $p is in use; stop what listens there first" >&2; exit 1; fi
done
command -v wrk >/dev/null || { echo "bench: wrk is needed (Debian package wrk)" >&2; exit 1; }
echo "bench: building (Release)" >&2
dotnet build src/Sluice/Sluice.csproj -c Release --nologo -v quiet >/dev/null
dotnet build bench/MockUpstream/MockUpstream.csproj -c Release --nologo -v quiet >/dev/null
sluice_bin="$root/src/Sluice/bin/Release/net10.0/sluice"
mock_bin="$root/bench/MockUpstream/bin/Release/net10.0/mock-upstream"
# shellcheck source=lib.sh
source "$root/bench/lib.sh"
now_ms() { date +%s%3N; }
uuid() { grep -oE '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' | head -1; }

database="Data Source=$work/sluice.db"
cli() { "$sluice_bin" "$@" --data-dir "$work/data" --database "$database" --log-format text; }
cli migrate >/dev/null
org="$(cli orgs create --name bench | uuid)"
key="$(cli keys create --org "$org" --name bench --rpm 100000000 --tpm 1000000000 | grep -oE 'sk-sluice-[A-Za-z0-9]+')"
"$sluice_bin" serve --urls "http://127.0.0.1:$port" --data-dir "$work/data" --database "$database" \
  --set Compute:AllowLoopbackServing=true >"$work/serve.log" 2>&1 & pids+=($!)
wait_for "http://127.0.0.1:$port/readyz"

# The machine: the org's own (a custom command runs as a process only on the organization's own machines).
token="$(cli machines join-token create --org "$org" | tail -1)"
"$sluice_bin" agent join --server "http://127.0.0.1:$port" --token "$token" --data-dir "$work/agent" \
  --listen "https://127.0.0.1:$serving_port" --advertise "https://127.0.0.1:$serving_port" >/dev/null
"$sluice_bin" agent run --data-dir "$work/agent" >"$work/agent.log" 2>&1 & pids+=($!)

deploy() { # name min
  cli deployments create --org "$org" --name "$1" --engine custom-command --command "$mock_bin" --env 'MOCK_PORT={port}' --env MOCK_CHUNKS=20 \
    --gpus 0 --min "$2" --max 1 --target-concurrency 1000 --idle-timeout 3600 | uuid
}
chat_body='{"model":"MODEL","messages":[{"role":"user","content":"Say hello."}],"max_tokens":64}'
ask() { # model: one request, prints its HTTP status
  curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d "${chat_body/MODEL/$1}" "http://127.0.0.1:$port/v1/chat/completions"
}
deploy bench-warm 1 >/dev/null
echo "bench: waiting for the warm deployment's replica" >&2
for _ in $(seq 1 300); do [[ "$(ask bench-warm)" == 200 ]] && break; sleep 0.2; done
[[ "$(ask bench-warm)" == 200 ]] || { echo "bench: the deployment never answered" >&2; tail -20 "$work/serve.log" "$work/agent.log" >&2; exit 1; }

MOCK_PORT=$direct_port MOCK_CHUNKS=20 "$mock_bin" >"$work/direct.log" 2>&1 & pids+=($!)
wait_for "http://127.0.0.1:$direct_port/health"

lua() { # file auth model
  cat >"$1" <<LUA
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
$([[ -n "$2" ]] && echo "wrk.headers[\"Authorization\"] = \"Bearer $2\"")
wrk.body = [[${chat_body/MODEL/$3}]]
LUA
}
lua "$work/direct.lua" "" mock
lua "$work/deployment.lua" "$key" bench-warm
run_wrk() { # connections script url: prints "rps p50_us p99_us errors"
  wrk -t"$(($1 < 2 ? 1 : 2))" -c"$1" -d"${measure}s" --latency -s "$2" "$3" 2>&1 | awk '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return (v + 0) * 1000; if (v ~ /s$/) return (v + 0) * 1000000; return v + 0 }
    $1 == "50%" { p50 = us($2) } $1 == "99%" { p99 = us($2) }
    /^Requests\/sec:/ { rps = $2 } /Non-2xx/ { errors += $NF } /Socket errors/ { errors += 1 }
    END { printf "%.0f %.0f %.0f %d\n", rps, p50, p99, errors }'
}
echo "bench: warming up" >&2
run_wrk 8 "$work/deployment.lua" "http://127.0.0.1:$port" >/dev/null
run_wrk 8 "$work/direct.lua" "http://127.0.0.1:$direct_port" >/dev/null
results="$work/results.txt"
: >"$results"
for c in 1 64; do
  echo "bench: c=$c, ${measure} s each" >&2
  echo "$c $(run_wrk "$c" "$work/direct.lua" "http://127.0.0.1:$direct_port") $(run_wrk "$c" "$work/deployment.lua" "http://127.0.0.1:$port")" >>"$results"
done

# Cold starts: the engine's own start-up, then a request to a deployment created at zero (each a fresh deployment).
engine_start() {
  local started pid
  started="$(now_ms)"
  MOCK_PORT=$probe_port "$mock_bin" >/dev/null 2>&1 & pid=$!
  until curl -fs -o /dev/null "http://127.0.0.1:$probe_port/health"; do sleep 0.005; done
  echo $(($(now_ms) - started))
  kill $pid; wait $pid 2>/dev/null || true
}
cold=()
for i in 1 2 3; do
  engine="$(engine_start)"
  deploy "bench-cold-$i" 0 >/dev/null
  for _ in $(seq 1 100); do cli deployments list --org "$org" | grep "bench-cold-$i" | grep -q scaled_to_zero && break; sleep 0.1; done
  warm_ms="$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d "${chat_body/MODEL/bench-warm}" "http://127.0.0.1:$port/v1/chat/completions" | awk '{ printf "%d", $1 * 1000 }')"
  started="$(now_ms)"
  status="$(ask "bench-cold-$i")"
  total=$(($(now_ms) - started))
  [[ "$status" == 200 ]] || { echo "bench: the cold request answered $status" >&2; exit 1; }
  cold+=("$engine $total $warm_ms")
  echo "bench: cold start $i: engine alone ${engine} ms, request at zero ${total} ms" >&2
done

report="$work/report.md"
cpu="$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
{
  echo "Run on $(date -u +%Y-%m-%d) by \`bench/deployments.sh --measure $measure\`: $(nproc) vCPU ($cpu), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); the server, the agent, both engines and wrk on the same cores; SQLite. Non-streaming chat, 20-token answers."
  echo
  echo "| concurrency | engine direct req/s | direct p50 | direct p99 | through the deployment req/s | deployment p50 | deployment p99 | added p50 | added p99 | errors |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  while read -r c drps dp50 dp99 derr grps gp50 gp99 gerr; do
    echo "| $c | $drps | $dp50 µs | $dp99 µs | $grps | $gp50 µs | $gp99 µs | $((gp50 - dp50)) µs | $((gp99 - dp99)) µs | $((derr + gerr)) |"
  done <"$results"
  echo
  echo "| cold start | engine start-up alone | request at zero replicas → answer | overhead (minus start-up and a warm request) |"
  echo "|---|---|---|---|"
  i=0
  for entry in "${cold[@]}"; do
    read -r engine total warm <<<"$entry"
    i=$((i + 1))
    echo "| $i | $engine ms | $total ms | $((total - engine - warm)) ms |"
  done
} >"$report"
cat "$report"
if $write_doc; then write_doc_section deployments "$report"; fi
