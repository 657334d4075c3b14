#!/usr/bin/env bash
# Kiln set-up: installs every system package and Python package Kiln needs, then
# optionally runs a job. Idempotent; a second run installs nothing and takes seconds.
#
#   ./setup.sh                 set-up only
#   ./setup.sh bake [IMAGE]    set-up, then `invoke bake IMAGE` (default: app) on the local target
#   ./setup.sh test [ARGS]     set-up (with the test tools of requirements-dev.txt), then the whole
#                              test suite in two lanes (pytest -n 2 … ARGS)
#
# Works as root or as a user with sudo (apt and the one-time foundation build need root).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

SUDO=()
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi

SYSTEM_PACKAGES=(
  packer qemu-system-x86 qemu-utils mmdebstrap e2fsprogs fdisk extlinux syslinux-common
  xorriso openssh-client python3 python3-venv git ca-certificates groovy default-jre-headless chromium
)

say() { printf 'setup: %s\n' "$*" >&2; }

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing system packages: ${missing[*]}"
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Debian's own Python, so every machine bakes with the same interpreter.
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  /usr/bin/python3 -m venv .venv
fi
# The Python packages go in with uv, pinned here and installed by pip: it fetches and unpacks
# in parallel, so a fresh .venv takes seconds rather than minutes (and compiles no bytecode
# ahead of use: Python writes it on first import).
UV_VERSION=0.13.10
if [ "$(.venv/bin/uv --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  say "installing uv $UV_VERSION into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
fi
# Runtime packages always; the test tools (linter, property tests, AWS emulator) only for `test`.
install() {  # install REQUIREMENTS-FILE unless the same file was installed before
  local want marker=".venv/.kiln-$1"
  want=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "$(cat "$marker" 2>/dev/null)" != "$want" ]; then
    say "installing the Python packages of $1 into .venv"
    .venv/bin/uv pip install -q --python .venv/bin/python -r "$1"
    echo "$want" > "$marker"
  fi
}
install requirements.txt
if [ "${1:-}" = "test" ]; then install requirements-dev.txt; fi

export KILN_CACHE="${KILN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln}"
if [ "$(id -u)" -ne 0 ] && [ "${1:-}" != "" ]; then
  # The foundation (loop device + mount for the boot loader) is the only root-only step.
  "${SUDO[@]}" env KILN_CACHE="$KILN_CACHE" .venv/bin/invoke foundation
  "${SUDO[@]}" chown -R "$(id -u):$(id -g)" "$KILN_CACHE"
fi

case "${1:-}" in
  "") say "ready: .venv/bin/invoke --list" ;;
  bake) shift; exec .venv/bin/invoke bake "${@:-app}" ;;
  # Two workers, the long chains in two lanes (tests/lanes.py); `-n 0` after it runs one.
  test) shift; exec .venv/bin/python -m pytest -n 2 --dist loadscope --no-loadscope-reorder "$@" ;;
  *) say "unknown job '$1' (use: bake [IMAGE] | test [PYTEST ARGS])"; exit 2 ;;
esac
