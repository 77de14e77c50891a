#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# deps.sh - install what building and testing amalgam needs on Debian 12,
# only the packages that are missing. Run as root (or it uses sudo).
set -eu
pkgs="build-essential autoconf automake libtool pkg-config libyaml-dev
libjansson-dev libcurl4-openssl-dev libssl-dev check python3 python3-numpy
python3-venv"
[ "${AMALGAM_DEPS_FUZZ:-}" = 1 ] && pkgs="$pkgs clang libclang-rt-14-dev valgrind"
missing=
for p in $pkgs; do
    # numpy from pip (a GPU image's Python) serves as well as Debian's
    [ "$p" = python3-numpy ] && python3 -c 'import numpy' 2>/dev/null &&
        continue
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
        missing="$missing $p"
done
[ -z "$missing" ] && { echo "deps: all build dependencies present"; exit 0; }
echo "deps: installing$missing"
sudo=
[ "$(id -u)" -ne 0 ] && sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing
