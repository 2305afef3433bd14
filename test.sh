#!/usr/bin/env bash
# Runs the whole test suite: every test on SQLite, and the database tests also on a throwaway PostgreSQL
# server started here on a loopback port. With CI=true, PostgreSQL is mandatory.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# shellcheck source=scripts/postgres.sh
source "$root/scripts/postgres.sh"
trap postgres_stop EXIT
if ! postgres_start; then
  if [[ "${CI:-}" == "true" ]]; then
    echo "test.sh: PostgreSQL could not be started, and CI requires it" >&2
    exit 1
  fi
  echo "test.sh: PostgreSQL unavailable; its tests will be skipped" >&2
fi

# Independent bcrypt implementation for cross-checks (apache2-utils' htpasswd): installed as root or with sudo.
# Under CI it is required, like PostgreSQL: a cross-check that cannot run fails the run instead of skipping.
if ! command -v htpasswd >/dev/null && command -v apt-get >/dev/null; then
  as_root=()
  if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then as_root=(sudo -n); fi
  if [[ $(id -u) -eq 0 || ${#as_root[@]} -gt 0 ]]; then
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get install -y -qq --no-install-recommends apache2-utils >/dev/null 2>&1 \
      || { "${as_root[@]}" apt-get update -qq >/dev/null 2>&1 && "${as_root[@]}" apt-get install -y -qq --no-install-recommends apache2-utils >/dev/null 2>&1; } \
      || true
  fi
fi
if ! command -v htpasswd >/dev/null; then
  if [[ "${CI:-}" == "true" ]]; then
    echo "test.sh: htpasswd (apache2-utils) could not be installed, and CI requires the bcrypt cross-check" >&2
    exit 1
  fi
  echo "test.sh: apache2-utils unavailable; the bcrypt cross-check will be skipped" >&2
fi

# The acceptance suite's official npm SDKs (tests/acceptance/node): node and npm from Debian when missing, then npm ci.
# Under CI it is required; elsewhere the npm SDK acceptance tests are skipped.
# shellcheck source=scripts/node-deps.sh
source "$root/scripts/node-deps.sh"
if ! node_deps; then
  if [[ "${CI:-}" == "true" ]]; then
    echo "test.sh: node/npm or the acceptance SDKs could not be installed, and CI requires them" >&2
    exit 1
  fi
  echo "test.sh: node/npm unavailable; the npm SDK acceptance tests will be skipped" >&2
fi

# The console's browser tests: Debian's chromium (installed when missing), driven by Playwright, which downloads nothing.
# Under CI it is required; elsewhere the browser tests are skipped.
# shellcheck source=scripts/chromium.sh
source "$root/scripts/chromium.sh"
if ! chromium_deps; then
  if [[ "${CI:-}" == "true" ]]; then
    echo "test.sh: chromium could not be installed, and CI requires the browser tests" >&2
    exit 1
  fi
  echo "test.sh: chromium unavailable; the browser tests will be skipped" >&2
fi

log="$(mktemp)"
set +e
dotnet test Sluice.slnx -c Release "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# One plain closing line: "N passed, N failed, N skipped".
summary="$(grep -E '^(Passed|Failed)!' "$log" | tail -n 1 || true)"
rm -f "$log"
if [[ -n "$summary" ]]; then
  passed="$(sed -E 's/.*Passed: *([0-9]+).*/\1/' <<<"$summary")"
  failed="$(sed -E 's/.*Failed: *([0-9]+).*/\1/' <<<"$summary")"
  skipped="$(sed -E 's/.*Skipped: *([0-9]+).*/\1/' <<<"$summary")"
  echo "tests: $passed passed, $failed failed, $skipped skipped"
  if [[ "${CI:-}" == "true" && "$skipped" != "0" && "$status" == "0" ]]; then
    echo "test.sh: $skipped tests skipped; under CI every cross-check must run" >&2
    exit 1
  fi
fi
exit "$status"
