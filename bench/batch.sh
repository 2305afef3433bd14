#!/usr/bin/env bash
# Batch benchmark: a 10,000-line chat batch against the built-in echo model (must finish within 60 s), then a batch
# against a mock provider that refuses more than LIMIT requests at once, registered with that limit: the runner should
# keep it exactly full (peak = LIMIT) and never overrun it (0 refused). SQLite, 127.0.0.1 only; writes its table into
# docs/benchmarks.md between its markers.
#
#   bench/batch.sh [--lines N] [--limit L] [--no-write]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

lines=10000 limit=8 latency_ms=20 limited_lines=2000 write_doc=true
while [[ $# -gt 0 ]]; do
  case "$1" in
    --lines) lines="$2"; shift 2 ;;
    --limit) limit="$2"; shift 2 ;;
    --no-write) write_doc=false; shift ;;
    *) echo "usage: bench/batch.sh [--lines N] [--limit L] [--no-write]" >&2; exit 2 ;;
  esac
done

work="$root/bench/.work/batch"
rm -rf "$work" && mkdir -p "$work"
mock_port=18091 sluice_port=18090
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
command -v curl >/dev/null || { echo "bench/batch.sh needs curl" >&2; exit 1; }

dotnet build "$root/src/Sluice" -c Release -v quiet -nologo >/dev/null
dotnet build "$root/bench/MockUpstream" -c Release -v quiet -nologo >/dev/null
sluice_bin="$root/src/Sluice/bin/Release/net10.0/sluice"
mock_bin="$root/bench/MockUpstream/bin/Release/net10.0/mock-upstream"
# shellcheck source=lib.sh
source "$root/bench/lib.sh"

MOCK_PORT=$mock_port MOCK_LATENCY_MS=$latency_ms MOCK_MAX_CONCURRENCY=$limit "$mock_bin" >"$work/mock.log" 2>&1 & pids+=($!)
wait_for "http://127.0.0.1:$mock_port/stats"

data="$work/data"
cli() { "$sluice_bin" "$@" --data-dir "$data" --log-format text; }
cli migrate >/dev/null
org="$(cli orgs create --name batch-bench | grep -oE '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' | head -1)"
cli providers add --name limited --kind openai-compatible --base-url "http://127.0.0.1:$mock_port/v1" --max-concurrent-requests "$limit" >/dev/null
cli models add limited >/dev/null
cli models route limited --provider limited --upstream-model mock --retains-data false --trains-on-data false >/dev/null
key="$(cli keys create --org "$org" --name bench | grep -oE 'sk-sluice-[A-Za-z0-9]+')"
"$sluice_bin" serve --urls "http://127.0.0.1:$sluice_port" --data-dir "$data" >"$work/sluice.log" 2>&1 & sluice_pid=$!
pids+=("$sluice_pid")
wait_for "http://127.0.0.1:$sluice_port/readyz"

jsonl() { # count model file
  awk -v n="$1" -v model="$2" 'BEGIN { for (i = 0; i < n; i++)
    printf "{\"custom_id\":\"r%d\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"question number %d about batches\"}],\"max_tokens\":64}}\n", i, model, i }' >"$3"
}
field() { grep -oE "\"$1\":(\"[^\"]*\"|[0-9]+)" | head -1 | cut -d: -f2 | tr -d '"'; }
run_batch() { # file -> prints "seconds completed failed status"
  local file_id batch_id started status body
  file_id="$(curl -fs -H "Authorization: Bearer $key" -F purpose=batch -F "file=@$1" "http://127.0.0.1:$sluice_port/v1/files" | field id)"
  started=$(date +%s.%N)
  batch_id="$(curl -fs -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d "{\"input_file_id\":\"$file_id\",\"endpoint\":\"/v1/chat/completions\",\"completion_window\":\"24h\"}" \
    "http://127.0.0.1:$sluice_port/v1/batches" | field id)"
  while true; do
    body="$(curl -fs -H "Authorization: Bearer $key" "http://127.0.0.1:$sluice_port/v1/batches/$batch_id")"
    status="$(echo "$body" | field status)"
    case "$status" in completed|failed|expired|cancelled) break ;; esac
    sleep 0.1
  done
  echo "$(awk -v a="$(date +%s.%N)" -v b="$started" 'BEGIN { print a - b }') $(echo "$body" | field completed) $(echo "$body" | grep -oE '"failed":[0-9]+' | cut -d: -f2) $status"
}

jsonl "$lines" echo "$work/echo.jsonl"
read -r echo_seconds echo_completed echo_failed echo_status < <(run_batch "$work/echo.jsonl")
jsonl "$limited_lines" limited "$work/limited.jsonl"
read -r limited_seconds limited_completed limited_failed limited_status < <(run_batch "$work/limited.jsonl")
stats="$(curl -fs "http://127.0.0.1:$mock_port/stats")"
peak="$(echo "$stats" | field peak)" refused="$(echo "$stats" | field refused)"
ideal="$(awk -v n="$limited_lines" -v ms="$latency_ms" -v l="$limit" 'BEGIN { print n * ms / 1000 / l }')"
rss="$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$sluice_pid/status")"

report="$work/report.md"
{
  echo "Run on $(date -u +%Y-%m-%d) by \`bench/batch.sh\`: $(nproc) vCPU ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), .NET $(dotnet --version), SQLite."
  echo
  echo "| batch | lines | status | completed / failed | wall time | lines/s | target |"
  echo "|---|---:|---|---:|---:|---:|---|"
  printf "| chat, echo model | %d | %s | %s / %s | %.1f s | %.0f | ≤ 60 s: %s |\n" "$lines" "$echo_status" "$echo_completed" "$echo_failed" "$echo_seconds" \
    "$(awk -v n="$lines" -v s="$echo_seconds" 'BEGIN { print n / s }')" "$(awk -v s="$echo_seconds" 'BEGIN { print (s <= 60) ? "met" : "missed" }')"
  printf "| chat, provider limited to %d at once (%d ms each) | %d | %s | %s / %s | %.1f s (ideal %.1f s) | %.0f | peak %s of %d, %s refused |\n" \
    "$limit" "$latency_ms" "$limited_lines" "$limited_status" "$limited_completed" "$limited_failed" "$limited_seconds" "$ideal" \
    "$(awk -v n="$limited_lines" -v s="$limited_seconds" 'BEGIN { print n / s }')" "$peak" "$limit" "$refused"
  echo
  echo "Sluice peak RSS during the batches: $rss MB."
} >"$report"
cat "$report"

if $write_doc; then write_doc_section bench/batch.sh "$report"; fi
