#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# pack.sh BUILD_DIR OUT_DIR - what tests/gpu/device-check.sh needs to run
# on a GPU machine that cannot build amalgam itself (no package registry,
# no -dev packages, no autotools), gathered from a build made elsewhere:
#
#   ./configure --with-cuda && make          (in BUILD_DIR, on x86-64)
#   sh tests/gpu/pack.sh BUILD_DIR .device   (.device is git-ignored)
#   ... carry .device to the GPU machine, then there:
#   DEVICE_CHECK_PREBUILT=.device bash tests/gpu/device-check.sh
#
# OUT_DIR gets the program, the built-in plugins, the CUDA backend and
# gpubench in the build tree's layout, the shared libraries they load
# beyond the C library (lib/, put on LD_LIBRARY_PATH there), and
# BUILD_PATH: the build folder's absolute path. device-check.sh links that
# path to OUT_DIR, so the program finds its plugins and backend exactly
# as it does when run from its build tree. The GPU machine's C library
# must be at least as new as the build machine's.
set -eu
[ $# -eq 2 ] || { echo "usage: pack.sh BUILD_DIR OUT_DIR" >&2; exit 2; }
b=$(cd "$1" && pwd -P)
o=$2
if [ ! -f "$b/backends/.libs/cuda.so" ] || [ ! -x "$b/tests/gpu/gpubench" ]
then
    echo "pack: '$b' has no backends/.libs/cuda.so or tests/gpu/gpubench:" \
         "configure it with --with-cuda and run make" >&2
    exit 1
fi
rm -rf "$o"
mkdir -p "$o/plugins/.libs" "$o/backends/.libs" "$o/tests/gpu" "$o/lib"
cp "$b/amalgam" "$o/"
cp "$b"/plugins/.libs/*.so "$o/plugins/.libs/"
cp "$b/backends/.libs/cuda.so" "$o/backends/.libs/"
cp "$b/tests/gpu/gpubench" "$o/tests/gpu/"
printf '%s\n' "$b" >"$o/BUILD_PATH"
# every library the binaries load, but the C library's own (the GPU
# machine has those, and mixing two C libraries does not work)
for f in "$o/amalgam" "$o/tests/gpu/gpubench" "$o"/plugins/.libs/*.so \
         "$o/backends/.libs/cuda.so"; do
    ldd "$f"
done | awk '$3 ~ /^\// { print $3 }' | sort -u | while read -r lib; do
    case ${lib##*/} in
        libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|\
        libresolv.so.*|ld-linux*) ;;
        *) cp -L "$lib" "$o/lib/" ;;
    esac
done
echo "pack: $(du -sh "$o" | cut -f1) in $o for $b"
