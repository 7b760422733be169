#!/usr/bin/env bash
# System libraries worldgen's Python packages need: open3d loads libusb-1.0 at import time.
set -euo pipefail
if { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep -q 'libusb-1.0.so.0'; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "installing Debian's libusb-1.0-0 (open3d needs it)"
  (apt-get install -y -q libusb-1.0-0 >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q libusb-1.0-0 >/dev/null; })
else
  echo "worldgen: error: open3d needs the system library libusb-1.0; install it first (Debian/Ubuntu: sudo apt-get install libusb-1.0-0)" >&2
  exit 2
fi
