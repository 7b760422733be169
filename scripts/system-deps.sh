#!/usr/bin/env bash
# System packages worldgen needs, installed with Debian's apt-get when running as root:
#   always:     libusb-1.0 (open3d loads it at import time; open3d is for mesh export)
#   --browser:  chromium (the viewer's real-browser tests; without it they skip, saying so)
set -euo pipefail

have_lib() { { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep -q "$1"; }
can_apt() { [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; }
apt_install() {
  (apt-get install -y -q "$@" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; })
}

if ! have_lib 'libusb-1.0.so.0'; then
  if can_apt; then
    echo "installing Debian's libusb-1.0-0 (open3d needs it)"
    DEBIAN_FRONTEND=noninteractive apt_install libusb-1.0-0
  else
    echo "worldgen: error: open3d needs the system library libusb-1.0; install it first (Debian/Ubuntu: sudo apt-get install libusb-1.0-0)" >&2
    exit 2
  fi
fi

if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null; then
  if can_apt; then
    echo "installing Debian's chromium (the viewer's browser tests)"
    DEBIAN_FRONTEND=noninteractive apt_install chromium || echo "worldgen: note: could not install chromium; the browser tests will skip" >&2
  else
    echo "worldgen: note: chromium is not installed (Debian: sudo apt-get install chromium); the browser tests will skip" >&2
  fi
fi
