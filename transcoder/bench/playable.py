"""The runs of transcoder/bench/playable.sh: time to first playable and time to done through the
whole pipeline (moto S3+SQS, one consumer in grpc mode, two warm transcoders), against the
one-pass encode. Run by playable.sh with the moto virtualenv's Python, after local_stack.py
setup (QUEUE_URL, RAW_BUCKET, OUTPUT_BUCKET and AWS_* in the environment).

  playable.py --work DIR --transcoder PATH --consumer PATH --lengths "1 10 60"
              --layouts "faststart end" --done-up-to 10 --playable-timeout 600

Exit 0 when every job ran (whatever the figures), 1 when a job failed or timed out, 2 when the
harness broke.
"""
import argparse
import json
import os
import posixpath
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

POLL_PERIOD = 0.1  # moto is one Python process: a player's poll every 100 ms, no harder
OUTPUT_PREFIX = "hls/"
PLAYABLE_TARGET_S = 5.0
PLAYABLE_CEILING_S = 8.0
DONE_RATIO_TARGET = 1.10
NOT_MEASURED = "not measured (DONE_UP_TO_MINUTES)"
# Mux's published median time to publish (Mux blog, April 2023), by source length.
MUX = [(60, "under 1 min", 2.0), (300, "1-5 min", 3.3), (1200, "5-20 min", 9.0), (3600, "20-60 min", 46.4)]
ENDED_BADLY = ("failed", "retrying", "dead_lettered", "cancelled")

ap = argparse.ArgumentParser()
ap.add_argument("--work", required=True)
ap.add_argument("--transcoder", required=True)
ap.add_argument("--consumer", required=True)
ap.add_argument("--lengths", default="1 10 60")
ap.add_argument("--layouts", default="faststart end")
ap.add_argument("--done-up-to", type=float, default=10)
ap.add_argument("--playable-timeout", type=float, default=600)
args = ap.parse_args()

WORK = args.work
RAW, OUT, QUEUE_URL = os.environ["RAW_BUCKET"], os.environ["OUTPUT_BUCKET"], os.environ["QUEUE_URL"]
config = Config(retries={"max_attempts": 5, "mode": "standard"})
s3 = boto3.client("s3", config=config)
sqs = boto3.client("sqs", config=config)
T0 = time.monotonic()


class HarnessError(Exception):
    pass


def log(text):
    print(f"[{time.monotonic() - T0:7.1f} s] {text}", file=sys.stderr, flush=True)


def product_env(**extra):
    """This environment without any encode or split knob: the figures are the product's defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRANSCODER_", "SPLIT_"))}
    env.update(extra)
    return env


# ---------------------------------------------------------------- sources


def ffmpeg(*argv):
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", *argv], check=True)


def duration_of(path):
    return float(subprocess.check_output(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path], text=True))


def top_level_boxes(path):
    """The MP4's top-level box types, in file order."""
    boxes = []
    with open(path, "rb") as f:
        total = os.fstat(f.fileno()).st_size
        pos = 0
        while pos < total:
            f.seek(pos)
            head = f.read(16)
            size, kind = int.from_bytes(head[:4], "big"), head[4:8].decode("latin-1")
            if size == 1:
                size = int.from_bytes(head[8:16], "big")
            elif size == 0:
                size = total - pos
            if size < 8:
                raise HarnessError(f"{path}: bad box {kind!r} of {size} bytes at {pos}")
            boxes.append(kind)
            pos += size
    return boxes


def base_minute():
    path = f"{WORK}/minute.mp4"
    if not os.path.exists(path):
        log("making one minute of 1080p30 testsrc2 with a tone (libx264 ultrafast, 3 Mbit/s)...")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=30", "-f", "lavfi", "-i",
               "sine=frequency=440:sample_rate=48000", "-t", "60", "-c:v", "libx264", "-preset",
               "ultrafast", "-b:v", "3M", "-maxrate", "3M", "-bufsize", "6M", "-g", "60",
               "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", path)
    return path


def make_sources(minutes, layouts):
    """{layout: path} for a `minutes`-long source: the minute concatenated (-c copy), remuxed
    (-c copy) with the index at the end (ffmpeg's default) and with +faststart."""
    minute = base_minute()
    listing = f"{WORK}/concat-{minutes}.txt"
    with open(listing, "w") as f:
        f.writelines(f"file '{minute}'\n" for _ in range(minutes))
    end = f"{WORK}/source-{minutes}min-end.mp4"
    log(f"making the {minutes}-minute source ({', '.join(layouts)})...")
    ffmpeg("-f", "concat", "-safe", "0", "-i", listing, "-map", "0", "-c", "copy", end)
    paths = {"end": end}
    if "faststart" in layouts:
        paths["faststart"] = f"{WORK}/source-{minutes}min-faststart.mp4"
        ffmpeg("-i", end, "-map", "0", "-c", "copy", "-movflags", "+faststart", paths["faststart"])
    for layout, path in paths.items():
        boxes = top_level_boxes(path)
        if "moov" not in boxes or "mdat" not in boxes:
            raise HarnessError(f"{path}: no moov or mdat at the top level: {boxes}")
        first = "moov" if boxes.index("moov") < boxes.index("mdat") else "mdat"
        if first != ("moov" if layout == "faststart" else "mdat"):
            raise HarnessError(f"{path} ({layout}): {first} comes first: {boxes}")
        log(f"  {os.path.basename(path)}: {os.path.getsize(path) / 1e6:.1f} MB, "
            f"{duration_of(path):.2f} s, top-level boxes {' '.join(boxes)}")
    return {layout: paths[layout] for layout in layouts}


# ---------------------------------------------------------------- processes


def processes():
    """(pid, ppid, pgrp, name, own CPU ticks, reaped children's CPU ticks) of every process."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        close = stat.rfind(")")
        rest = stat[close + 2:].split()
        found.append((int(entry), int(rest[1]), int(rest[2]), stat[stat.find("(") + 1:close],
                      int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14])))
    return found


TICK = os.sysconf("SC_CLK_TCK")


class CpuWindow:
    """CPU seconds over a measurement: the machine's (/proc/stat, every core), this benchmark's
    (playable.sh and everything under it: moto, this harness, the transcoders, the consumer,
    ffmpeg; what exits is counted in its parent's reaped time), and what that leaves: other
    work on the machine, which makes wall-clock figures noisy."""

    def __init__(self):
        self.machine, self.ours, self.started = self.machine_busy(), self.tree(), time.monotonic()

    @staticmethod
    def machine_busy():
        ticks = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return (sum(ticks) - ticks[3] - ticks[4]) / TICK  # all but idle and iowait

    @staticmethod
    def tree():
        procs = processes()
        below = {}
        for p in procs:
            below.setdefault(p[1], []).append(p)
        total, todo = 0, [os.getppid()]
        for p in procs:
            if p[0] == os.getppid():
                total += p[4] + p[5]
        while todo:
            for child in below.get(todo.pop(), []):
                total += child[4] + child[5]
                todo.append(child[0])
        return total / TICK

    def end(self):
        """(seconds, share of the machine others used, 0..1)."""
        seconds = time.monotonic() - self.started
        machine = self.machine_busy() - self.machine
        ours = self.tree() - self.ours
        cores = os.cpu_count() or 1
        self.ours_s = ours
        return seconds, max(0.0, machine - ours) / max(1e-9, seconds * cores)


class Proc:
    """A transcoder or the consumer in a process group of its own (ffmpeg is a transcoder's
    child); each incarnation logs to its own file."""

    def __init__(self, name, argv, env):
        self.name, self.argv, self.env = name, argv, env
        self.incarnation, self.popen, self.log_path = 0, None, None

    def start(self):
        self.incarnation += 1
        base = f"{WORK}/{self.name}.{self.incarnation}"
        self.log_path, self.out_path = base + ".log", base + ".out"
        self.popen = subprocess.Popen(self.argv, env=self.env, stdout=open(self.out_path, "w"),
                                      stderr=open(self.log_path, "w"), start_new_session=True)

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def group(self):
        return [p for p in processes() if p[2] == self.popen.pid]

    def encoding(self):
        return [p for p in self.group() if p[3] == "ffmpeg"]

    def kill(self):
        """SIGKILL to the whole group, then wait until none of it is left."""
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait()
        for _ in range(100):
            if not self.group():
                return
            time.sleep(0.1)
        raise HarnessError(f"{self.name}'s process group outlived SIGKILL: {self.group()}")

    def cpu(self):
        """CPU seconds of this incarnation's whole group so far, ffmpeg runs included."""
        for p in processes():
            if p[0] == self.popen.pid:
                return (p[4] + p[5]) / TICK
        return 0.0

    def log_size(self):
        return os.path.getsize(self.log_path)

    def lines_since(self, offset):
        out = []
        with open(self.log_path, errors="replace") as f:
            f.seek(offset)
            for line in f:
                if line.startswith("{"):
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
        return out


class Transcoder(Proc):
    def __init__(self, name, binary):
        self.work_dir = f"{WORK}/{name}-work"
        os.makedirs(self.work_dir, exist_ok=True)
        env = product_env(LOG_FORMAT="json", RUST_LOG="info", OUTPUT_PREFIX=OUTPUT_PREFIX,
                          TRANSCODER_WORK_DIR=self.work_dir)
        super().__init__(name, [binary, "serve", "--listen", "127.0.0.1:0", "--max-jobs", "1"], env)

    def start(self):
        super().start()
        for _ in range(300):
            text = open(self.out_path).read()
            if text.startswith("listening on "):
                address = text.split()[2]
                # A restart takes the same port.
                self.argv = [a if not a.startswith("127.0.0.1:") else address for a in self.argv]
                self.endpoint = "http://" + address
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise HarnessError(f"{self.name} did not start: {open(self.log_path).read()[-500:]}")

    def clear_work(self):
        """What a killed job left: its downloaded source and renditions."""
        for entry in os.listdir(self.work_dir):
            shutil.rmtree(os.path.join(self.work_dir, entry), ignore_errors=True)


class Consumer(Proc):
    def __init__(self, binary, transcoders):
        endpoints = ",".join(t.endpoint for t in transcoders)
        env = product_env(LOG_FORMAT="json", RUST_LOG="info", OUTPUT_PREFIX=OUTPUT_PREFIX,
                          DISPATCH_MODE="grpc", TRANSCODER_ENDPOINTS=endpoints)
        self.endpoints = endpoints.split(",")
        super().__init__("consumer", [binary], env)

    def start(self):
        """Starts it and waits until it has found every transcoder serving."""
        super().start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                break
            serving = {l["fields"].get("transcoder") for l in self.lines_since(0)
                       if l.get("fields", {}).get("message") == "transcoder health changed"
                       and l["fields"].get("serving") in (True, "true")}
            if all(e in serving or e.rstrip("/") in serving or e + "/" in serving for e in self.endpoints):
                return
            time.sleep(0.2)
        raise HarnessError(f"the consumer did not see both transcoders serving: {open(self.log_path).read()[-800:]}")


# ---------------------------------------------------------------- S3 as a player sees it


def get_text(key):
    try:
        return s3.get_object(Bucket=OUT, Key=key)["Body"].read().decode("utf-8", "replace")
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise


def uris(text):
    """Every URI a playlist names: its URI lines and URI="..." attributes."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            found.append(line)
        elif 'URI="' in line:
            found.append(line.split('URI="', 1)[1].split('"', 1)[0])
    return found


def resolve(base_key, uri):
    return posixpath.normpath(posixpath.join(posixpath.dirname(base_key), uri))


def listed(prefix):
    keys = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=OUT, Prefix=prefix):
        keys.update(item["Key"] for item in page.get("Contents", []))
    return keys


def playable(prefix):
    """The stable master exists, every media playlist it names exists and lists at least one
    segment, and every segment those list exists."""
    master_key = prefix + "master.m3u8"
    master = get_text(master_key)
    if master is None:
        return False
    variants = uris(master)
    if not variants:
        return False
    segments = []
    for uri in variants:
        key = resolve(master_key, uri)
        media = get_text(key)
        if media is None:
            return False
        named = [resolve(key, u) for u in uris(media)]
        if not named:
            return False
        segments += named
    have = listed(posixpath.commonprefix(segments))
    return all(s in have for s in segments)


def manifest(prefix):
    text = get_text(prefix + "manifest.json")
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None  # caught mid-write: next poll


def rfc3339(text):
    """Seconds since the epoch of an RFC 3339 UTC time (any number of fraction digits)."""
    if not text:
        return None
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    if not m:
        return None
    whole = datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return whole.astimezone(timezone.utc).timestamp() + (float("0." + m.group(2)) if m.group(2) else 0.0)


def delete_prefix(bucket, prefix):
    keys = sorted(listed(prefix)) if bucket == OUT else [prefix]
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})


def queue_counts():
    a = sqs.get_queue_attributes(QueueUrl=QUEUE_URL, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


# ---------------------------------------------------------------- the runs


class Bench:
    def __init__(self):
        self.transcoders = [Transcoder(f"t{i}", args.transcoder) for i in (1, 2)]
        self.consumer = None

    def start(self):
        for t in self.transcoders:
            t.start()
        self.consumer = Consumer(args.consumer, self.transcoders)
        self.consumer.start()
        log(f"2 transcoders ({', '.join(t.endpoint for t in self.transcoders)}) and the consumer (grpc) started")

    def stop_all(self):
        for p in [self.consumer, *self.transcoders]:
            if p is not None and p.popen is not None:
                try:
                    p.kill()
                except HarnessError as error:
                    log(str(error))

    def wait_idle(self):
        """No ffmpeg under any transcoder and nothing in the uploads queue: nothing else runs."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if not any(t.encoding() for t in self.transcoders) and queue_counts() == (0, 0):
                return
            time.sleep(0.5)
        raise HarnessError(f"not idle after 120 s: ffmpeg {[t.encoding() for t in self.transcoders]}, "
                           f"queue {queue_counts()}")

    def restart(self):
        """Stops whatever runs: the consumer first (it would hand the message back), both
        transcoders' process groups (ffmpeg included), the message (purged), then starts the
        transcoders on their ports and the consumer again."""
        self.consumer.kill()
        for t in self.transcoders:
            t.kill()
            t.clear_work()
        sqs.purge_queue(QueueUrl=QUEUE_URL)
        for t in self.transcoders:
            t.start()
        self.consumer.start()
        if queue_counts() != (0, 0):
            raise HarnessError(f"the queue still holds {queue_counts()} after the purge")

    def one_pass(self, source, minutes):
        self.wait_idle()
        out = f"{WORK}/one-pass-{minutes}"
        log(f"one pass: transcoder local on the {minutes}-minute source...")
        window = CpuWindow()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(f"{WORK}/one-pass-{minutes}.log", "w") as err:
            code = subprocess.run([args.transcoder, "local", source, out], env=product_env(),
                                  stdout=subprocess.DEVNULL, stderr=err).returncode
        seconds, others = window.end()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        shutil.rmtree(out, ignore_errors=True)
        if code != 0:
            return None, f"transcoder local exited {code} (see one-pass-{minutes}.log)"
        log(f"one pass: {seconds:.1f} s, {cpu:.1f} CPU s; others used {others:.0%} of the machine meanwhile")
        return {"one_pass_s": round(seconds, 2), "one_pass_cpu_s": round(cpu, 1),
                "one_pass_others_share": round(others, 3)}, None

    def job(self, minutes, layout, source, duration, measure_done):
        self.wait_idle()
        key = f"bench/{minutes}min-{layout}.mp4"
        prefix = OUTPUT_PREFIX + key.rsplit(".", 1)[0] + "/"
        offsets = [t.log_size() for t in self.transcoders]
        row = {"length_min": minutes, "layout": layout, "source_mb": round(os.path.getsize(source) / 1e6, 1),
               "source_s": round(duration, 2), "key": key}
        log(f"{minutes} min {layout}: uploading {row['source_mb']} MB...")
        started = time.monotonic()
        s3.upload_file(source, RAW, key)
        t0, wall0 = time.monotonic(), time.time()
        window = CpuWindow()
        product = lambda: sum(p.cpu() for p in [self.consumer, *self.transcoders])
        cpu0 = product()
        row["upload_s"] = round(t0 - started, 2)
        log(f"{minutes} min {layout}: uploaded in {row['upload_s']:.1f} s; polling every {POLL_PERIOD * 1000:.0f} ms")
        first = done = record = None
        error = None
        playable_deadline = t0 + args.playable_timeout
        done_deadline = t0 + 1800 + 3 * duration
        tick = t0
        while True:
            if first is None and playable(prefix):
                first = time.monotonic() - t0
                log(f"{minutes} min {layout}: playable after {first:.2f} s")
            record = manifest(prefix) or record
            status = record and record.get("status")
            if status == "done":
                done = time.monotonic() - t0
                if first is None and playable(prefix):
                    first = done  # done before a poll saw it playable
                log(f"{minutes} min {layout}: done after {done:.1f} s")
                break
            if status in ENDED_BADLY:
                error = f"the job ended {status}: {(record.get('error') or {}).get('message')}"
                break
            if first is not None and not measure_done:
                break
            now = time.monotonic()
            if first is None and now > playable_deadline:
                error = f"not playable after {args.playable_timeout:.0f} s (record: {status})"
                break
            if now > done_deadline:
                error = f"not done after {done_deadline - t0:.0f} s (record: {status})"
                break
            tick += POLL_PERIOD
            time.sleep(max(0.0, tick - time.monotonic()))

        _, others = window.end()
        row["others_share"] = round(others, 3)
        if done is not None:
            row["cpu_s"] = round(product() - cpu0, 1)  # the transcoders (ffmpeg included) and the consumer
            # The rest of the bench's CPU meanwhile: moto serving the job's requests (and this
            # harness's polls), which shares the cores with the encode here but not on AWS.
            row["emulator_cpu_s"] = round(window.ours_s - row["cpu_s"], 1)

        # The job's own figures, and who ran it.
        for t, offset in zip(self.transcoders, offsets):
            lines = t.lines_since(offset)
            msg = lambda l: l.get("fields", {}).get("message", "")
            download = [l["fields"] for l in lines if msg(l) == "downloaded source"]
            if download:
                row["transcoder"] = t.name
                row["download_s"] = round(float(download[-1].get("seconds", 0)), 2)
        if record:
            created, at, updated = (rfc3339(record.get(f)) for f in ("created_at", "playable_at", "updated_at"))
            row["job_id"] = record.get("job_id")
            if created:
                row["dispatch_s"] = round(created - wall0, 2)  # upload returned -> processing record
            if created and at:
                row["job_seconds_to_playable"] = round(at - created, 2)
            if created and updated and record.get("status") == "done":
                row["job_seconds_to_done"] = round(updated - created, 2)
        row["first_playable_s"] = None if first is None else round(first, 2)
        row["done_s"] = None if done is None else round(done, 2)
        if error:
            row["error"] = error
            log(f"{minutes} min {layout}: FAILED: {error}")
        if error or not measure_done:
            how = "timed out or failed" if error else "playable; done not measured"
            log(f"{minutes} min {layout}: {how}: stopping the job (consumer and transcoders killed, queue purged, restarted)")
            row["stopped_early"] = True
            self.restart()
        delete_prefix(RAW, key)
        delete_prefix(OUT, prefix)
        self.print_job(row, measure_done)
        return row

    @staticmethod
    def print_job(r, measure_done):
        f = lambda v, unit=" s": "?" if v is None else f"{v:.2f}{unit}"
        print(f"{r['length_min']} min {r['layout']}: source {r['source_mb']} MB, upload {f(r['upload_s'])}, "
              f"dispatch {f(r.get('dispatch_s'))}, download {f(r.get('download_s'))} ({r.get('transcoder', '?')}); "
              f"first playable {f(r['first_playable_s'])} (the job's own seconds_to_playable "
              f"{f(r.get('job_seconds_to_playable'))}); done "
              + (f"{f(r['done_s'])} (the job's own created_at -> done {f(r.get('job_seconds_to_done'))})"
                 if measure_done else NOT_MEASURED)
              + (f", {r['cpu_s']:.1f} CPU s" if r.get("cpu_s") is not None else "")
              + (f" (moto and this harness: {r['emulator_cpu_s']:.1f} CPU s)"
                 if r.get("emulator_cpu_s") is not None else "")
              + f"; others used {r['others_share']:.0%} of the machine meanwhile"
              + (f"; FAILED: {r['error']}" if r.get("error") else ""), flush=True)


def mux_for(seconds):
    for limit, bucket, median in MUX:
        if seconds < limit:
            return bucket, median
    return MUX[-1][1], MUX[-1][2]


def report(rows, failures):
    def cell(v, fmt="{:.1f}"):
        return "-" if v is None else (v if isinstance(v, str) else fmt.format(v))

    def busy(r):
        job = f"{100 * r['others_share']:.0f}" if r.get("others_share") is not None else "-"
        return job + (f"/{100 * r['one_pass_others_share']:.0f}" if r.get("one_pass_others_share") is not None else "")

    print()
    print(f"Playable in seconds whatever the length: {os.cpu_count()} cores, 2 warm transcoders "
          f"(--max-jobs 1, default encode settings), 1 consumer (grpc), moto on loopback; "
          f"times from the upload call's return")
    print()
    head = (f"{'length':>7}  {'layout':<9}  {'source MB':>9}  {'first playable s':>16}  {'done s':>12}  "
            f"{'one-pass s':>12}  {'done/one-pass':>13}  {'verdict':<12}  {'others %':>8}  Mux median time to publish")
    print(head)
    print("-" * len(head))
    for r in rows:
        measured = r["done_measured"]
        bucket, median = mux_for(r["source_s"])
        print(f"{r['length_min']:>4} min  {r['layout']:<9}  {r['source_mb']:>9.1f}  "
              f"{cell(r['first_playable_s'], '{:.2f}'):>16}  "
              f"{cell(r['done_s'] if measured else 'not measured'):>12}  "
              f"{cell(r.get('one_pass_s') if measured else 'not measured'):>12}  "
              f"{cell(r.get('ratio') if measured else '-', '{:.3f}'):>13}  {r['verdict']:<12}  {busy(r):>8}  {median:.1f} s ({bucket})")
    print("  others %: the share of the machine's CPU that work outside this benchmark used during the job"
          " (/during the one-pass); CPU seconds, job / one-pass: "
          + (", ".join(f"{r['length_min']} min {r['layout']} {r['cpu_s']:.0f}/{r['one_pass_cpu_s']:.0f} = {r['cpu_ratio']:.3f}"
                       for r in rows if r.get("cpu_ratio") is not None) or "none"))
    noisy = [r for r in rows if max(r.get("others_share", 0), r.get("one_pass_others_share", 0)) > 0.10]
    if noisy:
        print(f"  NOISY: other work used over 10% of the CPU during {len(noisy)} of these rows: their wall-clock"
              " figures and ratios are not this pipeline's alone; run again on a quiet machine")
    if any(not r["done_measured"] for r in rows):
        print(f"  not measured: DONE_UP_TO_MINUTES is {args.done_up_to:g}: longer sources are measured to first"
              " playable only, and their jobs stopped there (no one-pass either)")
    print()
    firsts = [r["first_playable_s"] for r in rows if r["first_playable_s"] is not None]
    ratios = [r["ratio"] for r in rows if r.get("ratio") is not None]
    targets = {
        f"first playable <= {PLAYABLE_TARGET_S:g} s for every length":
            (bool(firsts) and max(firsts) <= PLAYABLE_TARGET_S and len(firsts) == len(rows), firsts and f"worst {max(firsts):.2f} s"),
        f"first playable never above {PLAYABLE_CEILING_S:g} s":
            (bool(firsts) and max(firsts) <= PLAYABLE_CEILING_S and len(firsts) == len(rows), firsts and f"worst {max(firsts):.2f} s"),
        f"done <= {DONE_RATIO_TARGET:.2f}x one-pass":
            (None if not ratios else max(ratios) <= DONE_RATIO_TARGET, ratios and f"worst {max(ratios):.3f}x"),
    }
    for name, (ok, worst) in targets.items():
        verdict = "not measured" if ok is None else ("PASS" if ok else "MISS")
        print(f"  {name:<45} {verdict}{' (' + worst + ')' if worst else ''}")
    for f in failures:
        print(f"  FAILED: {f}")
    result = {
        "cores": os.cpu_count(),
        "transcoders": 2,
        "done_up_to_minutes": args.done_up_to,
        "targets": {k: (None if ok is None else bool(ok)) for k, (ok, _) in targets.items()},
        "jobs": rows,
        "failures": failures,
        "mux_median_time_to_publish_s": {bucket: median for _, bucket, median in MUX},
    }
    print("RESULT " + json.dumps(result, sort_keys=True), flush=True)


def main():
    lengths = [int(x) for x in args.lengths.split()]
    layouts = args.layouts.split()
    if not lengths or not layouts or any(l not in ("faststart", "end") for l in layouts) or any(n < 1 for n in lengths):
        raise HarnessError(f"LENGTHS must be whole minutes >= 1 and LAYOUTS faststart and/or end: {lengths} {layouts}")
    rows, failures = [], []
    bench = Bench()
    try:
        bench.start()
        for minutes in lengths:
            sources = make_sources(minutes, layouts)
            duration = duration_of(sources[layouts[0]])
            measure_done = minutes <= args.done_up_to
            one_pass = {}
            if measure_done:
                # One one-pass per length: the layouts hold the same streams, and `local` reads
                # either from disk the same way.
                one_pass, error = bench.one_pass(sources[layouts[0]], minutes)
                if error:
                    failures.append(f"{minutes} min one-pass: {error}")
                    one_pass = {}
            for layout in layouts:
                row = bench.job(minutes, layout, sources[layout], duration, measure_done)
                row["done_measured"] = measure_done
                row.update(one_pass)
                if row["done_s"] is not None and one_pass:
                    row["ratio"] = round(row["done_s"] / one_pass["one_pass_s"], 3)
                    if row.get("cpu_s") and one_pass["one_pass_cpu_s"]:
                        row["cpu_ratio"] = round(row["cpu_s"] / one_pass["one_pass_cpu_s"], 3)
                fp = row["first_playable_s"]
                if row.get("error"):
                    row["verdict"] = "FAILED"
                    failures.append(f"{minutes} min {layout}: {row['error']}")
                else:
                    ok = fp is not None and fp <= PLAYABLE_TARGET_S and (row.get("ratio") is None or row["ratio"] <= DONE_RATIO_TARGET)
                    row["verdict"] = ("PASS" if ok else "MISS") + (" (>8 s)" if fp is not None and fp > PLAYABLE_CEILING_S else "")
                rows.append(row)
            if not os.environ.get("BENCH_KEEP"):
                for path in set(sources.values()) | {f"{WORK}/source-{minutes}min-end.mp4"}:
                    if os.path.exists(path):
                        os.remove(path)
    finally:
        bench.stop_all()
    report(rows, failures)
    return 1 if failures else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))
    try:
        sys.exit(main())
    except Exception as error:  # the harness, not a job: a job's failure is counted, not raised
        print(f"playable.py: the harness broke: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(2)
