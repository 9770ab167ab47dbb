# syntax=docker/dockerfile:1
# The consumer image. Build from the repository root:
#   docker build -f docker/consumer.Dockerfile -t vod/consumer .

FROM rust:1.95-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json -p consumer
COPY . .
RUN cargo build --release --locked -p consumer --bin consumer

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --no-create-home consumer
COPY --from=builder /src/target/release/consumer /usr/local/bin/consumer
USER 10001:10001
ENV LOG_FORMAT=json
# The consumer serves nothing to probe: it is healthy while it runs, and ECS restarts it when
# it exits. Its liveness shows in its logs (one line per job) and the queue's age metric.
HEALTHCHECK NONE
# tini as PID 1, as in the transcoder image: signals reach the consumer's drain, and anything
# orphaned is reaped (docker/transcoder.Dockerfile says why `-s`).
ENTRYPOINT ["/usr/bin/tini", "-s", "--", "consumer"]
