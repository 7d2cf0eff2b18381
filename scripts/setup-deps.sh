#!/usr/bin/env bash
# setup-deps.sh: install the Debian packages tmrun needs that are missing (idempotent),
# then the npm reference packages the tests compare against (tests/js/node_modules).
#   scripts/setup-deps.sh          build + test dependencies
#   scripts/setup-deps.sh --build  build dependencies only
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_PKGS="build-essential cmake pkg-config luajit libluajit-5.1-dev libuv1-dev lua-luv lua-cjson libpcre2-dev"
TEST_PKGS="lua-busted valgrind tmux chromium curl"

want="$BUILD_PKGS"
[ "${1:-}" = "--build" ] || want="$want $TEST_PKGS"
command -v node >/dev/null 2>&1 || want="$want nodejs"
command -v npm >/dev/null 2>&1 || want="$want npm"

missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup-deps: installing$missing"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

if [ "${1:-}" != "--build" ]; then
  # The references no one here wrote (tokenizers, Jinja, corpus), pinned by package-lock.json.
  if [ ! -f tests/js/node_modules/.package-lock.json ] || [ tests/js/package.json -nt tests/js/node_modules/.package-lock.json ]; then
    echo "setup-deps: npm install (tests/js)"
    (cd tests/js && npm ci --no-audit --no-fund --loglevel=error 2>/dev/null || npm install --no-audit --no-fund --loglevel=error)
  fi
fi
