#!/usr/bin/env bash
# The browser for the console's browser tests: Debian's `chromium` package, installed as root or with sudo when missing
# (as scripts/node-deps.sh installs node). Playwright for .NET drives it through its ExecutablePath; no browser is
# ever downloaded. SLUICE_CHROMIUM names another executable instead (then nothing is installed).
# Source it and call chromium_deps (returns non-zero when no chromium can be had), or run it.

chromium_deps() {
  if [[ -n "${SLUICE_CHROMIUM:-}" ]]; then
    [[ -x "$SLUICE_CHROMIUM" ]] && return 0
    echo "chromium: SLUICE_CHROMIUM=$SLUICE_CHROMIUM is not an executable" >&2
    return 1
  fi
  if [[ -x /usr/bin/chromium ]] || command -v chromium >/dev/null; then
    return 0
  fi
  local as_root=()
  if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then as_root=(sudo -n); fi
  if [[ $(id -u) -ne 0 && ${#as_root[@]} -eq 0 ]] || ! command -v apt-get >/dev/null; then
    echo "chromium: chromium is not installed, and cannot be installed here (needs root and apt-get)" >&2
    return 1
  fi
  echo "chromium: installing Debian's chromium…" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
    || { "${as_root[@]}" apt-get update -qq >/dev/null && "${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
    || return 1
  [[ -x /usr/bin/chromium ]] || command -v chromium >/dev/null
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  chromium_deps
fi
