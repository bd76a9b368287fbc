# Shared shell helpers for tests/run and its steps. Source it; do not run it.
#
#   need_apt PKG...   install Debian packages that are missing (apt-get update once per run)
#   skip MESSAGE      print a loud SKIP: line; under CI=true a skip is a failure (exit 1)
#   step_venv         path of the project's test virtualenv (created on first use)

BATV_ROOT=${BATV_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export BATV_ROOT

skip() {
  echo "SKIP: $*" >&2
  if [ "${CI:-}" = "true" ]; then
    echo "FAIL: a skip is a failure in CI (CI=true)" >&2
    exit 1
  fi
  exit 0
}

need_apt() {
  local missing=()
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
    skip "needs Debian packages ${missing[*]} and cannot install them (not root)"
  fi
  local SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "installing Debian packages: ${missing[*]}" >&2
  local stamp=/tmp/.batv-apt-updated
  if [ ! -e "$stamp" ] || [ -n "$(find "$stamp" -mmin +120 2>/dev/null)" ]; then
    $SUDO apt-get update -qq >&2 && touch "$stamp"
  fi
  # Exim's postinst must not start a daemon on port 25 during tests.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >&2
}

step_venv() {
  local venv="$BATV_ROOT/target/test-venv"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --upgrade pip >&2
  fi
  echo "$venv"
}
