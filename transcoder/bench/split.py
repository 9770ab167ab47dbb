#!/usr/bin/env python3
"""Runs the split benchmark's jobs against moto and prints its figures (see split.sh).

Every figure comes from this one run: the encode alone, one warm transcoder on one core, two
warm transcoders on one core each (split), the time to first playable, and a projection to
more workers from the measured per-range times and overheads.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time

import boto3

GRID_S = 4  # split grid: the segment length
FIRST_RANGE_S = 8


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


class Serve:
    """A `transcoder serve` pinned to `cpus`, logging JSON to a file."""

    def __init__(self, binary, cpus, log_path, extra_env=None):
        env = dict(os.environ, LOG_FORMAT="json", RUST_LOG="info", OUTPUT_BUCKET="out")
        env.update(extra_env or {})
        self.log_path = log_path
        self.log = open(log_path, "w")
        cmd = ["taskset", "-c", cpus, binary, "serve", "--listen", "127.0.0.1:0"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True)
        first = self.proc.stdout.readline().strip()
        assert first.startswith("listening on "), first
        self.endpoint = "http://" + first.removeprefix("listening on ")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def lines(self, message):
        self.log.flush()
        out = []
        with open(self.log_path) as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("fields", {}).get("message") == message:
                    out.append(entry["fields"])
        return out

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def submit(binary, endpoint, source, output, stop_when_playable=False):
    """Submits a job; returns seconds to the playable line and to the end (None if stopped)."""
    cmd = [binary, "submit", "--endpoint", endpoint, source, "--output", output]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    playable = None
    for line in proc.stdout:
        if line.startswith("playable ") and playable is None:
            playable = time.monotonic() - start
            if stop_when_playable:
                proc.kill()  # the transcoder stops the job when its caller goes away
                proc.wait()
                return playable, None
    code = proc.wait()
    if code != 0:
        raise SystemExit(f"submit failed ({code}): {proc.stderr.read()}")
    return playable, time.monotonic() - start


def plan(duration, workers):
    """Range lengths as the coordinator plans them (transcoder/src/split/plan.rs): a short
    first range, a share of the whole for every peer, the rest (the coordinator's second) last."""
    cuts = [0]
    if FIRST_RANGE_S < duration:
        cuts.append(FIRST_RANGE_S)
        share = max(1, math.ceil(duration / workers / GRID_S)) * GRID_S
        cut = FIRST_RANGE_S
        for _ in range(workers - 1):
            cut += share
            if cut + GRID_S > duration:
                break
            cuts.append(cut)
    ends = cuts[1:] + [duration]
    return [e - s for s, e in zip(cuts, ends)]


def critical_path(duration, workers, speed, fixed, over_local, over_peer):
    """Seconds for a job split across `workers` one-core workers: the coordinator's fixed work,
    then the slowest worker. The coordinator encodes the first range and then takes the next
    free one, as the queue hands them out."""
    if workers == 1:
        return fixed + over_local + duration / speed
    lengths = plan(duration, workers)
    free = [0.0] * workers  # when each worker is next free; worker 0 is the coordinator
    for i, length in enumerate(lengths):
        w = 0 if i == 0 else min(range(workers), key=lambda k: (free[k], k == 0))
        free[w] += (over_local if w == 0 else over_peer) + length / speed
    return fixed + max(free)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--transcoder", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--long-source", required=True)
    args = ap.parse_args()
    t = args.transcoder
    s3 = boto3.client("s3")
    for bucket in ("raw", "out"):
        s3.create_bucket(Bucket=bucket)
    s3.upload_file(args.source, "raw", "two-minutes.mp4")
    s3.upload_file(args.long_source, "raw", "ten-minutes.mp4")
    duration = float(
        subprocess.check_output(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", args.source],
            text=True,
        )
    )

    log("1/5 the encode alone: transcoder local on core 0")
    start = time.monotonic()
    subprocess.run(
        ["taskset", "-c", "0", t, "local", args.source, os.path.join(args.work, "local")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    encode_only = time.monotonic() - start

    log("2/5 one warm transcoder on core 0: download, encode, publish while encoding")
    one = Serve(t, "0", os.path.join(args.work, "one.log"))
    one_playable, one_total = submit(t, one.endpoint, "s3://raw/two-minutes.mp4", "s3://out/one/")
    one.stop()

    log("3/5 two warm transcoders on one core each: split and stitch")
    peer = Serve(t, "1", os.path.join(args.work, "peer.log"))
    split_env = {"TRANSCODER_PEERS": peer.endpoint, "SPLIT_MIN_SECONDS": "60"}
    coordinator = Serve(t, "0", os.path.join(args.work, "coordinator.log"), split_env)
    two_playable, two_total = submit(t, coordinator.endpoint, "s3://raw/two-minutes.mp4", "s3://out/two/")
    ranges = coordinator.lines("range done")
    encoded = {r["range"]: r for r in coordinator.lines("range encoded") + peer.lines("range encoded")}
    ready = {r["range"]: r["seconds"] for r in peer.lines("range source ready")}
    one_download = one.lines("downloaded source")[-1]["seconds"]

    log("4/5 a 10-minute source, split: time to first playable (the job is then stopped)")
    long_split_playable, _ = submit(
        t, coordinator.endpoint, "s3://raw/ten-minutes.mp4", "s3://out/ten-split/", stop_when_playable=True
    )
    coordinator.stop()
    peer.stop()

    log("5/5 a 10-minute source, one pass on both cores: time to first playable")
    both = Serve(t, "0,1", os.path.join(args.work, "both.log"))
    long_single_playable, _ = submit(
        t, both.endpoint, "s3://raw/ten-minutes.mp4", "s3://out/ten-one/", stop_when_playable=True
    )
    long_download = both.lines("downloaded source")[-1]["seconds"]
    both.stop()

    # The model, from the split run itself: each range's encode time (its worker's log), and
    # what the range cost beyond it (the coordinator's wall time less the encode: the RPC, the
    # peer's download and probe, ffmpeg's start, the upload of its segments).
    media = sum(r["media_s"] for r in ranges)
    encode = sum(encoded[r["range"]]["encode_s"] for r in ranges)
    speed = media / encode
    def overhead(worker_is_local):
        rows = [r for r in ranges if (r["worker"] == "local") == worker_is_local]
        return sum(r["wall_s"] - encoded[r["range"]]["encode_s"] for r in rows) / max(1, len(rows))
    over_local, over_peer = overhead(True), overhead(False)
    busy = {}
    for r in ranges:
        busy[r["worker"]] = busy.get(r["worker"], 0.0) + r["wall_s"]
    fixed = two_total - max(busy.values())

    print()
    print(f"Split benchmark, {duration:.0f} s 1080p30 source, 5 rungs, libx264 veryfast, one core per worker")
    print()
    print(f"  encode alone (transcoder local, core 0)        {encode_only:7.1f} s   ({speed:.2f}x real time)")
    print(f"  one warm transcoder (core 0), whole job         {one_total:7.1f} s   job / encode alone = {one_total / encode_only:.3f} (target <= 1.05)")
    print(f"  two warm transcoders (cores 0 and 1), split     {two_total:7.1f} s   speedup = {one_total / two_total:.2f}x (target >= 1.7)")
    print()
    print("  time to first playable (from submit; the source is downloaded first)")
    print(f"    2-min source, one transcoder, one pass        {one_playable:7.1f} s   (download {one_download:.1f} s)")
    print(f"    2-min source, split, first range {FIRST_RANGE_S} s         {two_playable:7.1f} s")
    print(f"    10-min source, one pass on 2 cores            {long_single_playable:7.1f} s   (target < 10 s)")
    print(f"    10-min source, split, first range {FIRST_RANGE_S} s        {long_split_playable:7.1f} s   (target < 10 s)")
    print(f"    (the 10-min source is {os.path.getsize(args.long_source) / 1e6:.0f} MB; its download from moto alone took {long_download:.1f} s)")
    print()
    print("  ranges of the split job (coordinator's and peer's logs)")
    print("    range  worker                     media s  encode s   wall s   beyond the encode s")
    for r in sorted(ranges, key=lambda r: r["range"]):
        enc = encoded[r["range"]]["encode_s"]
        print(f"    {r['range']:5}  {r['worker']:<25} {r['media_s']:8.1f} {enc:9.1f} {r['wall_s']:8.1f} {r['wall_s'] - enc:10.1f}")
    print(f"    encode speed per worker {speed:.3f}x real time; beyond the encode: {over_local:.1f} s a range here,")
    print(f"    {over_peer:.1f} s on a peer (of which download and probe {sum(ready.values()) / max(1, len(ready)):.1f} s);")
    print(f"    the coordinator's own download, probe and final publish: {fixed:.1f} s")
    print()
    print("  projection: critical path with N one-core workers (same per-range costs)")
    print("    N     2-min job   speedup     1-hour job   speedup")
    for n in (1, 2, 4, 8, 16, 64):
        short = critical_path(duration, n, speed, fixed, over_local, over_peer)
        base_short = critical_path(duration, 1, speed, fixed, over_local, over_peer)
        long = critical_path(3600.0, n, speed, fixed, over_local, over_peer)
        base_long = critical_path(3600.0, 1, speed, fixed, over_local, over_peer)
        print(f"    {n:<5} {short:8.1f} s  {base_short / short:6.1f}x   {long:9.1f} s  {base_long / long:6.1f}x")
    print("    (a 2-min source has 30 segments of 4 s: past 29 workers it has no more ranges to give,")
    print("     and the short first range plus the fixed costs become the floor)")


if __name__ == "__main__":
    main()
