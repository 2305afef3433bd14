#!/usr/bin/env bash
# End-to-end gateway benchmark on one machine: a mock OpenAI-compatible upstream, then the same wrk load sent
# straight to it, through nginx (a bare keepalive reverse proxy), through the Portkey open-source gateway and
# through Sluice (auth, rate limits, holds and metering on; SQLite, then PostgreSQL). Binds 127.0.0.1 only,
# stops everything it started, and writes the table into docs/benchmarks.md between its markers.
#
#   bench/run.sh [--duration SECONDS] [--databases "sqlite postgres"] [--no-write]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

duration=10
databases="sqlite postgres"
write_doc=true
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --databases) databases="$2"; shift 2 ;;
    --no-write) write_doc=false; shift ;;
    *) echo "usage: bench/run.sh [--duration SECONDS] [--databases \"sqlite postgres\"] [--no-write]" >&2; exit 2 ;;
  esac
done

work="$root/bench/.work"
mkdir -p "$work"
mock_port=18081 sluice_port=18080 nginx_port=18082 portkey_port=18787
portkey_version=1.15.2
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [[ -f "$work/nginx/nginx.pid" ]]; then nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -s stop 2>/dev/null || true; fi
  declare -F postgres_stop >/dev/null && postgres_stop
  wait 2>/dev/null || true
}
trap cleanup EXIT

# ---- what it needs ----------------------------------------------------------------------------------------------
apt_install() {
  [[ $(id -u) -eq 0 ]] || { echo "bench: please install $* (Debian packages)" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || apt_install nginx-light
command -v wrk >/dev/null || apt_install wrk
command -v curl >/dev/null || apt_install curl
command -v npm >/dev/null || apt_install nodejs npm
PATH="$PATH:/usr/sbin"
portkey_main="$work/portkey/node_modules/@portkey-ai/gateway/build/start-server.js"
if [[ ! -f "$portkey_main" ]]; then
  echo "bench: installing @portkey-ai/gateway@$portkey_version" >&2
  npm install --silent --no-audit --no-fund --prefix "$work/portkey" "@portkey-ai/gateway@$portkey_version" >/dev/null
fi

echo "bench: building (Release)" >&2
dotnet build src/Sluice/Sluice.csproj -c Release --nologo -v quiet >/dev/null
dotnet build bench/MockUpstream/MockUpstream.csproj -c Release --nologo -v quiet >/dev/null
sluice_bin="$root/src/Sluice/bin/Release/net10.0/sluice"
mock_bin="$root/bench/MockUpstream/bin/Release/net10.0/mock-upstream"

# shellcheck source=lib.sh
source "$root/bench/lib.sh"

# ---- the mock, nginx, Portkey -----------------------------------------------------------------------------------
MOCK_PORT=$mock_port MOCK_CHUNKS=20 "$mock_bin" >"$work/mock.log" 2>&1 & pids+=($!)
# The mock answers POSTs only; wait for its port with a real request.
for _ in $(seq 1 150); do
  curl -fs -o /dev/null -X POST -d '{}' "http://127.0.0.1:$mock_port/v1/embeddings" && break; sleep 0.2
done
kill -0 "${pids[-1]}" 2>/dev/null || { echo "bench: the mock did not start (is port $mock_port taken?); see $work/mock.log" >&2; exit 1; }

mkdir -p "$work/nginx/logs"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  upstream mock { server 127.0.0.1:$mock_port; keepalive 128; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx"

NODE_ENV=production node "$portkey_main" --headless --port=$portkey_port >"$work/portkey.log" 2>&1 & pids+=($!)
wait_for "http://127.0.0.1:$portkey_port/"

# ---- load -------------------------------------------------------------------------------------------------------
chat_body='{"model":"bench","messages":[{"role":"user","content":"Say hello."}],"max_tokens":64}'
stream_body='{"model":"bench","messages":[{"role":"user","content":"Say hello."}],"max_tokens":64,"stream":true,"stream_options":{"include_usage":true}}'
embed_body='{"model":"bench","input":"Say hello."}'

write_lua() { # file path body header...
  local file="$1" path="$2" body="$3"; shift 3
  {
    echo 'wrk.method = "POST"'
    echo "wrk.path = \"$path\""
    echo 'wrk.headers["Content-Type"] = "application/json"'
    for header in "$@"; do echo "wrk.headers[\"${header%%:*}\"] = \"${header#*: }\""; done
    echo "wrk.body = [[$body]]"
  } >"$file"
}

# Prints "rps p50_us p99_us errors" for one wrk run.
run_wrk() { # url lua connections
  local threads=1
  [[ "$3" -gt 1 ]] && threads=2
  wrk -t"$threads" -c"$3" -d"${duration}s" --latency -s "$2" "$1" 2>&1 | awk '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return (v + 0) * 1000; if (v ~ /s$/) return (v + 0) * 1000000; return v + 0 }
    $1 == "50%" { p50 = us($2) } $1 == "99%" { p99 = us($2) }
    /^Requests\/sec:/ { rps = $2 } /Non-2xx/ { errors += $NF } /Socket errors/ { errors += 1 }
    END { printf "%.0f %.0f %.0f %d\n", rps, p50, p99, errors }'
}

# Median time to first byte of a streamed chat, in microseconds, over 300 sequential requests.
ttfb() { # url header...
  local url="$1"; shift
  local args=()
  for header in "$@"; do args+=(-H "$header"); done
  for _ in $(seq 1 300); do
    curl -s -o /dev/null -w '%{time_starttransfer}\n' -X POST -H 'Content-Type: application/json' "${args[@]}" \
      --data "$stream_body" "$url/v1/chat/completions"
  done | sort -n | awk '{ v[NR] = $1 } END { printf "%.0f\n", v[int(NR / 2) + 1] * 1000000 }'
}

results="$work/results.tsv"
: >"$results"
measure() { # target url header...
  local target="$1" url="$2"; shift 2
  local dir="$work/lua/$target"
  mkdir -p "$dir"
  write_lua "$dir/chat.lua" /v1/chat/completions "$chat_body" "$@"
  write_lua "$dir/stream.lua" /v1/chat/completions "$stream_body" "$@"
  write_lua "$dir/embeddings.lua" /v1/embeddings "$embed_body" "$@"
  # Warm every workload up before measuring any: the first workload measured otherwise pays for tiered JIT
  # compilation still finishing in the background (a first chat run at c=1 measured 695 µs p50, the same run later 168 µs).
  for workload in chat stream embeddings; do
    wrk -t2 -c16 -d3s -s "$dir/$workload.lua" "$url" >/dev/null 2>&1
    wrk -t1 -c1 -d2s -s "$dir/$workload.lua" "$url" >/dev/null 2>&1
  done
  for workload in chat stream embeddings; do
    for connections in 1 64; do
      echo "bench: $target $workload c=$connections" >&2
      echo "$target $workload $connections $(run_wrk "$url" "$dir/$workload.lua" "$connections")" >>"$results"
    done
  done
  echo "$target ttfb 1 0 $(ttfb "$url" "$@") 0 0" >>"$results"
}

measure direct "http://127.0.0.1:$mock_port" "Authorization: Bearer sk-mock"
measure nginx "http://127.0.0.1:$nginx_port" "Authorization: Bearer sk-mock"
measure portkey "http://127.0.0.1:$portkey_port" "Authorization: Bearer sk-mock" "x-portkey-provider: openai" \
  "x-portkey-custom-host: http://127.0.0.1:$mock_port/v1"

# ---- Sluice, on each database -----------------------------------------------------------------------------------
rss_file="$work/rss.txt"
: >"$rss_file"
for database in $databases; do
  data="$work/data-$database"
  rm -rf "$data"
  db_args=()
  if [[ "$database" == postgres ]]; then
    # shellcheck source=../scripts/postgres.sh
    source "$root/scripts/postgres.sh"
    postgres_start
    db_args=(--database "$SLUICE_TEST_POSTGRES")
  fi
  cli() { "$sluice_bin" "$@" --data-dir "$data" "${db_args[@]}" --log-format text; }
  cli migrate >/dev/null
  org="$(cli orgs create --name bench | grep -oE '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' | head -1)"
  MOCK_KEY=sk-mock cli providers add --name mock --kind openai-compatible --base-url "http://127.0.0.1:$mock_port/v1" \
    --api-key-env MOCK_KEY >/dev/null
  cli models add bench >/dev/null
  route="$(cli models route bench --provider mock --upstream-model mock --retains-data false --trains-on-data false \
    | grep -oE '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' | head -1)"
  cli prices set --route "$route" --input 0.15 --output 0.60 >/dev/null
  cli wallet credit --org "$org" --amount 1000000 --reason benchmark >/dev/null
  key="$(cli keys create --org "$org" --name bench --rpm 100000000 --tpm 1000000000 | grep -oE 'sk-sluice-[A-Za-z0-9]+')"

  "$sluice_bin" serve --urls "http://127.0.0.1:$sluice_port" --data-dir "$data" "${db_args[@]}" \
    >"$work/sluice-$database.log" 2>&1 & sluice_pid=$!
  pids+=("$sluice_pid")
  wait_for "http://127.0.0.1:$sluice_port/readyz"
  measure "sluice-$database" "http://127.0.0.1:$sluice_port" "Authorization: Bearer $key"
  echo "$database $(awk '/VmHWM/ { print $2 }' "/proc/$sluice_pid/status")" >>"$rss_file"
  kill "$sluice_pid"; wait "$sluice_pid" 2>/dev/null || true
  if [[ "$database" == postgres ]]; then postgres_stop; fi
done

# ---- the report -------------------------------------------------------------------------------------------------
report="$work/report.md"
cpu="$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
{
  echo "Run on $(date -u +%Y-%m-%d) by \`bench/run.sh --duration $duration\`: $(nproc) vCPU ($cpu), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(. /etc/os-release && echo "$PRETTY_NAME"), .NET $(dotnet --version), nginx $(nginx -v 2>&1 | sed 's/.*\///'), Portkey gateway $portkey_version, $(wrk -v 2>&1 | head -1 | awk '{ print $1, $2 }'). Everything (wrk included) shares the same cores."
  echo
  awk -v rssfile="$rss_file" '
    # A peer that answered with errors has no meaningful throughput to compare with.
    function versus(t, key) { return err["portkey", key] > 0 ? "n/a (Portkey errors)" : sprintf("%.1f×", rps[t, key] / rps["portkey", key]) }
    BEGIN { while ((getline line < rssfile) > 0) { split(line, f, " "); rss["sluice-" f[1]] = f[2] } }
    $2 == "ttfb" { ttfb[$1] = $5; next }
    { key = $2 " " $3; rps[$1, key] = $4; p50[$1, key] = $5; p99[$1, key] = $6; err[$1, key] = $7
      if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
    END {
      print "| target | workload | conc. | req/s | p50 | p99 | added p50 | added p99 | errors |"
      print "|---|---|---:|---:|---:|---:|---:|---:|---:|"
      split("chat 1,chat 64,stream 1,stream 64,embeddings 1,embeddings 64", keys, ",")
      for (k = 1; k <= 6; k++) for (i = 1; i <= n; i++) {
        t = order[i]; key = keys[k]; split(key, kc, " ")
        added50 = (t == "direct") ? "" : sprintf("%+d µs", p50[t, key] - p50["direct", key])
        added99 = (t == "direct") ? "" : sprintf("%+d µs", p99[t, key] - p99["direct", key])
        printf "| %s | %s | %s | %d | %d µs | %d µs | %s | %s | %d |\n", t, kc[1], kc[2], rps[t, key], p50[t, key], p99[t, key], added50, added99, err[t, key]
      }
      print ""
      print "| target | stream time to first byte (p50, c=1) | added | peak RSS |"
      print "|---|---:|---:|---:|"
      for (i = 1; i <= n; i++) {
        t = order[i]
        printf "| %s | %d µs | %s | %s |\n", t, ttfb[t], (t == "direct") ? "" : sprintf("%+d µs", ttfb[t] - ttfb["direct"]), (t in rss) ? sprintf("%.0f MB", rss[t] / 1024) : ""
      }
      print ""
      print "| target | c=64 throughput vs nginx (chat / stream / embeddings) | vs Portkey |"
      print "|---|---:|---:|"
      for (i = 1; i <= n; i++) {
        t = order[i]; if (t !~ /^sluice/) continue
        printf "| %s | %.0f%% / %.0f%% / %.0f%% | %s / %s / %s |\n", t,
          100 * rps[t, "chat 64"] / rps["nginx", "chat 64"], 100 * rps[t, "stream 64"] / rps["nginx", "stream 64"], 100 * rps[t, "embeddings 64"] / rps["nginx", "embeddings 64"],
          versus(t, "chat 64"), versus(t, "stream 64"), versus(t, "embeddings 64")
      }
    }' "$results"
} >"$report"
cat "$report"

if $write_doc; then write_doc_section bench/run.sh "$report"; fi
