#!/usr/bin/env bash
# Installs the Debian packages cglow needs, only those missing (run as root on Debian 12).
set -e
pkgs="build-essential libopenblas-dev libfftw3-dev libpng-dev libcjson-dev gnuplot-nox pkg-config python3 python3-dev python3-venv python3-numpy python3-torch"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing Debian packages:$missing"
  if [ "$(id -u)" != 0 ]; then echo "error: need root to install:$missing" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq $missing >/dev/null
fi
