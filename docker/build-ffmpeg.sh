#!/bin/sh
# docker/build-ffmpeg.sh OUT_DIR: builds the transcoder image's ffmpeg and ffprobe into one
# Debian package, OUT_DIR/vod-ffmpeg.deb, on Debian bookworm (docker/transcoder.Dockerfile runs
# it in a stage of its own; it runs the same in a bookworm chroot).
#
# Why: Debian's `ffmpeg` package is built with every optional library (SDL and X11 for ffplay
# and devices, Mesa and LLVM through them, Vulkan, OpenCL, flite, x265, codec2, rsvg...): about
# 200 packages and 470 MB installed, of which the transcoder uses libx264, the native decoders,
# demuxers and filters, the aac and mjpeg encoders and the hls muxer. This builds the same
# source, Debian's (the version the tests run against, with Debian's patches), with:
#   - every native decoder, demuxer, parser, filter, encoder and muxer, as upstream defaults
#     (an upload may be in any format ffmpeg reads by itself);
#   - libx264 (the ladder), libdav1d (AV1 uploads: ffmpeg has no software AV1 decoder of its
#     own), libzimg (the zscale filter), zlib, bzip2 and lzma (PNG, compressed MOV and MKV);
#   - nothing autodetected: no devices, no ffplay, no hardware acceleration, no X11, no SDL.
# The libraries go to /usr/lib/vod-ffmpeg (found through the binaries' rpath), so they can
# never be confused with Debian's libav* packages. The package's Depends are read from what
# the binaries link, so apt installs exactly those libraries.
set -eu
out="${1:?usage: build-ffmpeg.sh OUT_DIR}"
export DEBIAN_FRONTEND=noninteractive

# Source packages: the slim image lists binary packages only.
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  sed -i 's/^Types: deb$/Types: deb deb-src/' /etc/apt/sources.list.d/debian.sources
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  build-essential dpkg-dev nasm pkg-config xz-utils \
  libx264-dev libdav1d-dev libzimg-dev zlib1g-dev libbz2-dev liblzma-dev >/dev/null

work=$(mktemp -d)
cd "$work"
apt-get source -qq ffmpeg >/dev/null
src=$(find . -maxdepth 1 -type d -name 'ffmpeg-*' | head -n 1)
version=$(cd "$src" && dpkg-parsechangelog -S Version)
cd "$src"
./configure \
  --prefix=/usr --libdir=/usr/lib/vod-ffmpeg --shlibdir=/usr/lib/vod-ffmpeg \
  --enable-shared --disable-static --enable-rpath \
  --disable-autodetect --disable-avdevice --disable-ffplay --disable-doc --disable-debug \
  --enable-gpl --enable-pthreads --enable-iconv \
  --enable-zlib --enable-bzlib --enable-lzma \
  --enable-libx264 --enable-libdav1d --enable-libzimg \
  --extra-version="vod-$version" >/dev/null
make -j"$(nproc)" >/dev/null
make install >/dev/null

# The package: the two programs and their libraries; headers, pkg-config files, examples and
# presets stay behind.
pkg="$work/pkg"
mkdir -p "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/usr/lib/vod-ffmpeg"
cp -a /usr/bin/ffmpeg /usr/bin/ffprobe "$pkg/usr/bin/"
cp -a /usr/lib/vod-ffmpeg/*.so* "$pkg/usr/lib/vod-ffmpeg/"
strip --strip-unneeded "$pkg/usr/bin/"* "$pkg/usr/lib/vod-ffmpeg/"*.so.*.*
# Every library they link, by the package that ships it. ldd names /lib/..., which dpkg lists
# under /usr/lib/... since Debian merged /usr: ask for both, and stop on a library that no
# package ships.
libraries=$(ldd /usr/bin/ffmpeg /usr/bin/ffprobe /usr/lib/vod-ffmpeg/*.so.*.* \
  | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | grep -v '^/usr/lib/vod-ffmpeg/' | sort -u)
packages=""
for library in $libraries; do
  owner=$(dpkg -S "$library" 2>/dev/null || dpkg -S "/usr$library")
  packages="$packages ${owner%%:*}"
done
depends=$(echo "$packages" | tr ' ' '\n' | grep . | sort -u | paste -sd, | sed 's/,/, /g')
size=$(du -sk "$pkg/usr" | cut -f1)
cat >"$pkg/DEBIAN/control" <<EOF
Package: vod-ffmpeg
Version: $version
Architecture: $(dpkg --print-architecture)
Maintainer: vod-pipeline
Installed-Size: $size
Depends: $depends
Conflicts: ffmpeg
Provides: ffmpeg
Section: video
Priority: optional
Description: ffmpeg and ffprobe for the vod-pipeline transcoder
 Debian's ffmpeg $version built with libx264, libdav1d, libzimg and the native
 codecs, formats and filters only (docker/build-ffmpeg.sh).
EOF
mkdir -p "$out"
dpkg-deb --root-owner-group --build "$pkg" "$out/vod-ffmpeg.deb" >/dev/null
echo "built $out/vod-ffmpeg.deb: ffmpeg $version, $size KiB, depends on $depends"
