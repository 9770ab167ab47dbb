# syntax=docker/dockerfile:1
# The transcoder image: `transcoder serve` (a warm transcoder) by default, `transcoder run` as
# the one-shot ECS task. Build from the repository root:
#   docker build -f docker/transcoder.Dockerfile -t vod/transcoder .

# Dependencies are built in their own layer from a recipe of the manifests (cargo-chef), so a
# change to our code rebuilds only our crates.
FROM rust:1.95-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json -p transcoder
COPY . .
RUN cargo build --release --locked -p transcoder --bin transcoder

# ffmpeg and ffprobe from Debian's source (5.1, the version the tests run against) with only
# what the transcoder uses, as one package: Debian's own ffmpeg package brings about 200
# packages and 470 MB (X11, SDL, Mesa and LLVM, Vulkan, speech synthesis...). The script says
# what is kept.
FROM debian:bookworm-slim AS ffmpeg
COPY docker/build-ffmpeg.sh /usr/local/bin/build-ffmpeg.sh
RUN sh /usr/local/bin/build-ffmpeg.sh /out

# That ffmpeg (apt installs the few libraries it links), and tini as the init (below).
FROM debian:bookworm-slim AS runtime
RUN --mount=type=bind,from=ffmpeg,source=/out,target=/tmp/ffmpeg \
    apt-get update \
 && apt-get install -y --no-install-recommends /tmp/ffmpeg/vod-ffmpeg.deb ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /work --create-home transcoder
COPY --from=builder /src/target/release/transcoder /usr/local/bin/transcoder
USER 10001:10001
WORKDIR /work
# Sources and renditions go here: on Fargate, the task's ephemeral storage.
ENV TRANSCODER_WORK_DIR=/work \
    TRANSCODER_LISTEN=0.0.0.0:50051 \
    LOG_FORMAT=json
EXPOSE 50051
# The gRPC health service, asked by the binary itself (no separate probe to ship). A one-shot
# `run` task serves no gRPC: ECS task definitions for it leave the health check out.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["transcoder", "healthcheck", "--endpoint", "http://127.0.0.1:50051"]
# tini first: PID 1 must reap orphans (an ffmpeg whose job was killed) and pass SIGTERM on, which
# a program that spawns children should not have to do itself. `-s` (subreaper) keeps that true
# under a runtime's own init too (compose `init: true`, ECS `initProcessEnabled`), where tini is
# PID 2. No `-g`: SIGTERM goes to the transcoder alone, which drains; ffmpeg must not die first.
ENTRYPOINT ["/usr/bin/tini", "-s", "--", "transcoder"]
CMD ["serve"]
