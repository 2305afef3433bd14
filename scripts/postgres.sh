#!/usr/bin/env bash
# A throwaway PostgreSQL server on a loopback port, for tests. Source this file, then:
#   postgres_start   installs the Debian package if needed, initdb in a temp dir, starts the server,
#                    and exports SLUICE_TEST_POSTGRES (an admin connection string). Returns non-zero on failure.
#   postgres_stop    stops the server and removes its directory.
# As root, the server runs as the `postgres` user (initdb refuses root).

postgres_bin_dir() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

postgres_install() {
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "postgres: not installed, and cannot install it here (needs root and apt-get)" >&2
    return 1
  fi
  echo "postgres: installing the Debian package…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends postgresql >/dev/null
}

# Candidate ports sit below Linux's ephemeral range (32768-60999), where a client connection's local port or a
# TIME-WAIT left by one would make the bind fail although nothing listens there.
postgres_free_port() { # [first]
  local port
  for port in $(seq "${1:-25432}" 25632); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

postgres_start() {
  local bin run=()
  bin="$(postgres_bin_dir)" || { postgres_install && bin="$(postgres_bin_dir)"; } || return 1
  SLUICE_PG_DIR="$(mktemp -d /tmp/sluice-pg.XXXXXX)"
  if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres || return 1
    chown postgres: "$SLUICE_PG_DIR"
    run=(runuser -u postgres --)
  fi
  SLUICE_PG_RUN=("${run[@]}")
  SLUICE_PG_BIN="$bin"
  if ! "${run[@]}" "$bin/initdb" -D "$SLUICE_PG_DIR/data" -A trust -U sluice -E UTF8 --no-locale >"$SLUICE_PG_DIR/initdb.log" 2>&1; then
    cat "$SLUICE_PG_DIR/initdb.log" >&2
    return 1
  fi
  local port=25431 attempt started=false
  for attempt in 1 2 3 4 5; do
    port="$(postgres_free_port $((port + 1)))" || return 1
    if "${run[@]}" "$bin/pg_ctl" -D "$SLUICE_PG_DIR/data" -l "$SLUICE_PG_DIR/server.log" -w -t 60 \
        -o "-p $port -k $SLUICE_PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        start >/dev/null; then
      started=true
      break
    fi
  done
  if [[ $started != true ]]; then
    cat "$SLUICE_PG_DIR/server.log" >&2
    return 1
  fi
  export SLUICE_TEST_POSTGRES="Host=127.0.0.1;Port=$port;Username=sluice;Database=postgres"
  echo "postgres: $("$bin/postgres" --version) on 127.0.0.1:$port" >&2
}

postgres_stop() {
  if [[ -n "${SLUICE_PG_DIR:-}" && -d "$SLUICE_PG_DIR" ]]; then
    "${SLUICE_PG_RUN[@]}" "$SLUICE_PG_BIN/pg_ctl" -D "$SLUICE_PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$SLUICE_PG_DIR"
  fi
}
