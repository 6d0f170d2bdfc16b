#!/usr/bin/env bash
# Sets up everything villagewatch needs on a Debian machine with Python 3.11+.
#   scripts/setup.sh          the node itself: a virtualenv in .venv with the package
#   scripts/setup.sh --dev    also what the tests need: Debian's GStreamer RTSP server
#                             (the camera simulator), Chromium, and the dev tools
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1
python=${PYTHON:-python3}

debs=(fonts-wqy-microhei)
if [ $dev = 1 ]; then
  debs+=(gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
    gstreamer1.0-tools chromium nftables iproute2 systemd python3-venv ca-certificates
    gcc python3-dev)  # the last two: docs/operations.md installs with them (test_install.py)
fi
missing=()
for deb in "${debs[@]}"; do
  dpkg -s "$deb" >/dev/null 2>&1 || missing+=("$deb")
done
# The compiled send path (relay/webrtc/_sendpath.c, setup.py) is built with the machine's
# C compiler.
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
headers='import os, sys, sysconfig; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))'
"$python" -c "$headers" 2>/dev/null || missing+=(python3-dev)
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: please install these Debian packages (as root): ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
extra=""
[ $dev = 1 ] && extra="[dev]"
stamp=".venv/.installed$extra"
# Installed again when what it is built from changes (the compiled send path, whose
# editable install builds it next to its source).
current() {
  [ -f "$1" ] && [ ! pyproject.toml -nt "$1" ] && [ ! relay/webrtc/_sendpath.c -nt "$1" ] &&
    compgen -G "relay/webrtc/_sendpath*.so" >/dev/null
}
# The dev install holds the plain one: run.sh after `setup.sh --dev` installs nothing.
if ! current "$stamp" && ! current ".venv/.installed[dev]"; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -e ".$extra"
  touch "$stamp"
fi
