#!/bin/sh
# The runtime images built and run for real, with Debian bookworm's podman 4.3 and no registry:
# the `runtime` stage of docker/transcoder.Dockerfile and docker/consumer.Dockerfile, verbatim,
# on a debian:bookworm-slim base made here with debootstrap, with the workspace's prebuilt
# binaries standing in for the `builder` stage (whose rust image no registry here can give).
# Then: `transcoder local` on a 2 s clip in the image (with and without a runtime init), its
# HLS output played with the image's own ffmpeg, `consumer --version`, and a `transcoder serve`
# whose PID 1 is the image's tini and which stops cleanly on SIGTERM.
#
# Run by docker/tests/test_images_podman.py (scripts/test.sh). Needs root and the Debian mirror.
# Everything podman stores lives under $ROOT (its own storage.conf and containers.conf), so the
# host's /var/lib/containers and /etc/containers are neither used nor changed; a second run
# reuses the base image and the apt layers, and redoes only the COPY of the binaries.
#
#   sh docker/tests/podman.sh        # env: ROOT REPO BIN TAG MIRROR SECURITY_MIRROR
set -eu

ROOT=${ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/vod-pipeline/podman}  # all state: storage, base, work dir
REPO=${REPO:-$(cd "$(dirname "$0")/../.." && pwd)}       # build context (only read)
BIN=${BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug}     # prebuilt `transcoder` and `consumer`
TAG=${TAG:-test}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}

T0=$(date +%s)
step() { echo "== [$(( $(date +%s) - T0 ))s] $*" >&2; }

# 1. Packages. podman alone is not enough here: runc (crun 1.8 refuses hybrid cgroup v1/v2
#    hosts), catatonit (`podman run --init`), debootstrap (the base image).
missing=
for p in podman runc catatonit debootstrap; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  step "apt-get install$missing"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

# 2. Private podman configuration.
#    - runc: crun 1.8.1 fails with "cgroups in hybrid mode not supported, drop all controllers
#      from cgroupv2" on hosts that mount cgroup v1 plus a cgroup2 `unified` tree.
#    - ulimits: rootful podman asks the runtime for nofile=nproc=1048576; root without
#      CAP_SYS_RESOURCE (sandboxes, some CI runners) gets "setrlimit RLIMIT_NOFILE: Operation
#      not permitted". Ask for the hard limits we have (podman caps its own nproc at 32768).
mkdir -p "$ROOT"
nofile=$(awk '/^Max open files/ {print $5}' /proc/self/limits)
[ "$nofile" = unlimited ] && nofile=1048576
nproc=$(awk '/^Max processes/ {print $4}' /proc/self/limits)
if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
cat > "$ROOT/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$ROOT/storage"
runroot = "$ROOT/run"
EOF
cat > "$ROOT/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
EOF
export CONTAINERS_STORAGE_CONF="$ROOT/storage.conf" CONTAINERS_CONF="$ROOT/containers.conf"
podman info --format 'podman {{.Version.Version}}, {{.Store.GraphDriverName}} at {{.Store.GraphRoot}}, cgroup {{.Host.CgroupsVersion}}' >&2

# 3. Base image debian:bookworm-slim, made like the official one (debuerreotype): minbase, the
#    deb822 sources with updates + security, no docs/man/locales, apt caches cleaned after each
#    dpkg run (without docker-clean the ffmpeg layer keeps ~200 MB of .debs).
if ! podman image exists docker.io/library/debian:bookworm-slim; then
  step "debootstrap bookworm (minbase)"
  r="$ROOT/rootfs"
  rm -rf "$r"
  debootstrap --variant=minbase bookworm "$r" "$MIRROR" >"$ROOT/debootstrap.log" 2>&1 \
    || { tail -20 "$ROOT/debootstrap.log" >&2; exit 1; }
  rm -f "$r/etc/apt/sources.list"
  cat > "$r/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat > "$r/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
  cat > "$r/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' > "$r/etc/apt/apt.conf.d/docker-no-languages"
  find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$r"/usr/share/man/* "$r"/usr/share/locale/* "$r"/usr/share/info/* \
         "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/*
  mkdir -p "$r/var/lib/apt/lists/partial"
  step "podman import"
  tar -C "$r" --numeric-owner -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - docker.io/library/debian:bookworm-slim >/dev/null
  podman tag docker.io/library/debian:bookworm-slim localhost/debian:bookworm-slim
  rm -rf "$r"
fi

# 4. Stand-in for the `builder` stage: the prebuilt binaries where COPY --from=builder looks.
#    (A copy, not the live cargo target: a concurrent cargo build may rewrite those files.)
mkdir -p "$ROOT/builder/src/target/release"
for app in transcoder consumer; do
  cp "$BIN/$app" "$ROOT/builder/src/target/release/$app.tmp"
  mv -f "$ROOT/builder/src/target/release/$app.tmp" "$ROOT/builder/src/target/release/$app"
done

# 5. The transcoder's `ffmpeg` stage compiles ffmpeg (docker/build-ffmpeg.sh): about 8 minutes
#    on two cores, too long for every cold test run. FFMPEG_STAGE=real builds that stage as the
#    Dockerfile writes it, tagged by its own text (so later runs know it is built); stand-in
#    replaces it with a package that depends on Debian's ffmpeg; auto (the default) takes the
#    real one when it is already built here, the stand-in otherwise. Either way the transcoder
#    is built from a copy of its Dockerfile whose ffmpeg stage is `FROM` that image, every other
#    line as written, and without the layer cache: buildah does not key a RUN's cache on what
#    `--mount=from=` brings, so a cached layer could hold the other stage's ffmpeg.
dockerfile="$REPO/docker/transcoder.Dockerfile"
stage_tag="localhost/vod/ffmpeg-stage:$(sed -n '/ AS ffmpeg$/,/^FROM /p' "$dockerfile" | cat - "$REPO/docker/build-ffmpeg.sh" | sha256sum | cut -c1-16)"
mode=${FFMPEG_STAGE:-auto}
if [ "$mode" = auto ]; then
  if podman image exists "$stage_tag"; then mode=real; else mode=stand-in; fi
fi
case "$mode" in
  real)
    step "ffmpeg stage: built from Debian's source by docker/build-ffmpeg.sh ($stage_tag)"
    podman build --quiet --format docker --pull=never --network host --target ffmpeg \
      -t "$stage_tag" -f "$dockerfile" "$REPO" >/dev/null
    ;;
  stand-in)
    step "ffmpeg stage: a stand-in that installs Debian's ffmpeg (FFMPEG_STAGE=real builds the real one)"
    stage_tag=localhost/vod/ffmpeg-stage:stand-in
    mkdir -p "$ROOT/standin"
    printf '%s\n' 'FROM debian:bookworm-slim' \
      'RUN mkdir -p /pkg/DEBIAN /out && printf "Package: vod-ffmpeg\nVersion: 0~standin\nArchitecture: all\nMaintainer: tests\nDepends: ffmpeg\nDescription: stand-in\n" > /pkg/DEBIAN/control && dpkg-deb --root-owner-group --build /pkg /out/vod-ffmpeg.deb' \
      > "$ROOT/standin/Dockerfile"
    podman build --quiet --format docker --pull=never --network none -t "$stage_tag" \
      "$ROOT/standin" >/dev/null
    ;;
  *) echo "FFMPEG_STAGE is real, stand-in or auto, not $mode" >&2; exit 64 ;;
esac
derived="$ROOT/transcoder.Dockerfile"
awk -v image="$stage_tag" '
  / AS ffmpeg$/ { print "FROM " image " AS ffmpeg"; skip = 1; next }
  /^FROM / { skip = 0 }
  !skip { print }' "$dockerfile" > "$derived"

# 6. Build the `runtime` stages. --build-context builder=DIR replaces the builder stage (the
#    rust/cargo-chef stages are skipped); --format docker keeps HEALTHCHECK (OCI drops it);
#    --network host: the RUN apt-get needs the mirror (the default CNI bridge works too).
for app in transcoder consumer; do
  step "podman build $app"
  set -- -f "$REPO/docker/$app.Dockerfile"
  [ "$app" = transcoder ] && set -- --no-cache -f "$derived"
  podman build --quiet --format docker --pull=never --network host --target runtime \
    --build-context builder="$ROOT/builder" \
    -t "localhost/vod/$app:$TAG" "$@" "$REPO" >/dev/null
done
podman image prune -f >/dev/null      # the previous builds' layers, once the binaries changed
podman images --filter reference='localhost/vod/*' >&2

# 7. Run, with --network none (nothing here needs a network; no CNI bridge or iptables involved;
#    `serve` answers its health check on the container's loopback). --no-healthcheck: podman wants systemd timers for HEALTHCHECK and logs an error
#    without systemd. The clip is made and the output checked with the image's own ffmpeg.
W="$ROOT/work"
rm -rf "$W"; mkdir -p "$W"; chown 10001:10001 "$W"
run() { podman run --rm --pull=never --no-healthcheck "$@"; }
IMG="localhost/vod/transcoder:$TAG"

step "make a 2 s clip"
# With this machine's ffmpeg: the image's is built without lavfi's test sources.
ffmpeg -hide_banner -nostdin -v error -y -f lavfi -i testsrc2=s=640x360:r=30 -f lavfi -i sine \
  -t 2 -c:v libx264 -c:a aac "$W/clip.mp4"
chown 10001:10001 "$W/clip.mp4"

step "transcoder local clip.mp4 out"
run --network none -v "$W:/work" "$IMG" local clip.mp4 out
test -s "$W/out/master.m3u8"
run --network none -v "$W:/work" --entrypoint ffmpeg "$IMG" -v error -i out/master.m3u8 -f null -

step "transcoder local under the runtime's init (compose's init: true, ECS initProcessEnabled)"
run --network none --init -v "$W:/work" "$IMG" local clip.mp4 out-init
run --network none -v "$W:/work" --entrypoint ffmpeg "$IMG" -v error -i out-init/master.m3u8 -f null -

step "consumer --version"
run --network none "localhost/vod/consumer:$TAG" --version

step "transcoder serve: tini is PID 1, SIGTERM stops it with exit 0"
name="vod-recipe-serve-$$"
trap 'podman rm -f -t 0 "$name" >/dev/null 2>&1 || true' EXIT
podman run -d --name "$name" --pull=never --no-healthcheck --network none "$IMG" >/dev/null
i=0
until podman exec "$name" transcoder healthcheck --endpoint http://127.0.0.1:50051 >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -lt 50 ] || { podman logs "$name" >&2; echo "serve never became healthy" >&2; exit 1; }
  sleep 0.2
done
pid1=$(podman exec "$name" cat /proc/1/cmdline | tr '\0' ' ')
case "$pid1" in "/usr/bin/tini -s -- transcoder serve "*) ;; *) echo "PID 1 is: $pid1" >&2; exit 1;; esac
podman stop -t 10 "$name" >/dev/null
code=$(podman inspect "$name" --format '{{.State.ExitCode}}')
[ "$code" = 0 ] || { echo "serve exited $code after SIGTERM" >&2; exit 1; }

step "all good"
