#!/usr/bin/env bash
# The acceptance suite's Node.js side: makes sure node and npm exist (Debian's `nodejs npm` packages, installed as
# root or with sudo when missing, as scripts/postgres.sh installs PostgreSQL), then installs the exact SDK versions
# of tests/acceptance/node/package-lock.json with `npm ci` (skipped when node_modules already matches the lock).
# Source it and call node_deps (returns non-zero on failure), or run it.

node_deps() {
  local root dir
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  dir="$root/tests/acceptance/node"
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    local as_root=()
    if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then as_root=(sudo -n); fi
    if [[ $(id -u) -ne 0 && ${#as_root[@]} -eq 0 ]] || ! command -v apt-get >/dev/null; then
      echo "node-deps: node/npm are not installed, and cannot be installed here (needs root and apt-get)" >&2
      return 1
    fi
    echo "node-deps: installing Debian's nodejs and npm…" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null 2>&1 \
      || { "${as_root[@]}" apt-get update -qq >/dev/null && "${as_root[@]}" apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; } \
      || return 1
  fi
  if [[ -f "$dir/node_modules/.package-lock.json" && ! "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]]; then
    return 0
  fi
  echo "node-deps: npm ci in tests/acceptance/node…" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  node_deps
fi
