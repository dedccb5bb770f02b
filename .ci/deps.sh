#!/usr/bin/env bash
# Installs what building, running and testing chatgate needs on Debian 12:
# the apt packages below and the npm packages of the committed lock file.
# Used by both `make run` and `make test`. Idempotent and quiet: when
# everything is present it only checks and returns (well under a second).
set -euo pipefail

cd "$(dirname "$0")/.."

APT_PACKAGES=(
  # build
  cmake pkg-config make gcc clang libc6-dev
  # libraries (pkg-config names: libwebsockets libuv jansson hiredis openssl)
  libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libjansson-dev
  libssl-dev libhiredis-dev
  # tests
  libcriterion-dev redis-server curl ca-certificates openssl nginx
  chromium   # the web client's e2e tests (tests/e2e, playwright-core)
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# node (with npm) runs the integration tests; Debian's nodejs is enough
# when the machine has none of its own.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  SUDO=
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
      echo "deps: missing packages and not root: apt-get install -y ${missing[*]}" >&2
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages from the committed lock file; re-run only when the lock
# file changed since the last install.
if [ -f package-lock.json ]; then
  stamp=node_modules/.package-lock.json
  if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
    echo "deps: npm ci"
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
  fi
fi
