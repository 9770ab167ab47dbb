"""The chaos run of consumer/bench/chaos.sh: starts the transcoders and consumers, uploads,
injects the faults, polls every stable master like a player, and prints the counts. Run by
chaos.sh with the moto virtualenv's Python, after local_stack.py setup (QUEUE_URL, DLQ_URL,
RAW_BUCKET, OUTPUT_BUCKET and AWS_* in the environment).

  chaos.py --work DIR --uploads N --transcoder PATH --consumer PATH

Exit 0 when every target is met (duplicate encodes 0, lost 0, moments unplayable 0, both
queues empty, no record left `processing`, exactly the two bad files failed), 1 otherwise.
"""
import argparse
import json
import os
import posixpath
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

parser = argparse.ArgumentParser()
parser.add_argument("--work", required=True)
parser.add_argument("--uploads", type=int, default=60)
parser.add_argument("--transcoder", required=True)
parser.add_argument("--consumer", required=True)
args = parser.parse_args()
if args.uploads < 10:
    sys.exit("UPLOADS must be at least 10")

WORK = args.work
RAW, OUT = os.environ["RAW_BUCKET"], os.environ["OUTPUT_BUCKET"]
QUEUE_URL, DLQ_URL = os.environ["QUEUE_URL"], os.environ["DLQ_URL"]
OUTPUT_PREFIX = "hls/"
TIMEOUT = float(os.environ.get("CHAOS_TIMEOUT", "900"))
FREEZE_SECONDS = float(os.environ.get("FREEZE_SECONDS", "30"))
POLL_PERIOD = 0.5
QUEUE_GRACE = 120
QUEUE_VISIBILITY = "30"

config = Config(retries={"max_attempts": 10, "mode": "standard"}, max_pool_connections=16)
s3 = boto3.client("s3", config=config)
sqs = boto3.client("sqs", config=config)
T0 = time.time()


def now():
    return time.time() - T0


def log(text):
    print(f"[{now():6.1f} s] {text}", file=sys.stderr, flush=True)


def strip(etag):
    return (etag or "").strip('"')


def prefix_of(key):
    """The output prefix of an upload (transcoder::storage::default_output for plain keys)."""
    return OUTPUT_PREFIX + key.rsplit(".", 1)[0] + "/"


# ---------------------------------------------------------------- clips


def ffmpeg(*argv):
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", *argv], check=True)


def clip_seconds(i, tag):
    """How long key i's upload `tag` is: a re-upload is never as long as the first upload, so
    a published version's length tells which bytes it encoded."""
    return 2 + (i + (1 if tag == "v2" else 0)) % 3


def make_clips(n):
    """Three base clips (2, 3, 4 s), remuxed with a comment so that every upload has bytes of
    its own: key i's first upload, and the re-upload of every fifth key."""
    bases = []
    for seconds in (2, 3, 4):
        path = f"{WORK}/base-{seconds}.mp4"
        ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-f", "lavfi", "-i",
               f"sine=frequency={220 * seconds}:sample_rate=48000", "-t", str(seconds),
               "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", path)
        bases.append(path)

    def variant(i, tag):
        path = f"{WORK}/clip-{i:04d}-{tag}.mp4"
        base = bases[clip_seconds(i, tag) - 2]
        ffmpeg("-i", base, "-map", "0", "-c", "copy", "-metadata", f"comment=chaos {i} {tag}", path)
        return path

    jobs = [(i, "v1") for i in range(n)] + [(i, "v2") for i in range(0, n, 5)]
    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda j: variant(*j), jobs))
    return {job: open(path, "rb").read() for job, path in zip(jobs, paths)}


def make_liar():
    """transcoder/tests/invalid_input.rs `lying_duration`: 40 s of samples, the movie, track
    and media durations divided by 6 and the edit lists made into free space."""
    path = f"{WORK}/liar.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=30", "-f", "lavfi", "-i",
           "sine=frequency=440:sample_rate=48000", "-t", "40", "-c:v", "libx264", "-preset",
           "ultrafast", "-c:a", "aac", "-movflags", "+faststart", path)
    data = bytearray(open(path, "rb").read())

    def patch(atom, offset):
        at = 0
        while (found := data.find(atom, at)) >= 0:
            field = found + 4 + offset
            if data[found + 4] == 0:  # version 0
                value = int.from_bytes(data[field:field + 4], "big")
                data[field:field + 4] = (value // 6).to_bytes(4, "big")
            at = found + 4

    patch(b"mvhd", 16)
    patch(b"mdhd", 16)
    patch(b"tkhd", 20)
    at = 0
    while (found := data.find(b"edts", at)) >= 0:
        data[found:found + 4] = b"free"
        at = found + 4
    return bytes(data)


# ---------------------------------------------------------------- processes


def children(pid):
    """(pid, command name) of the processes whose parent is `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        close = stat.rfind(")")
        if int(stat[close + 2:].split()[1]) == pid:
            found.append((int(entry), stat[stat.find("(") + 1:close]))
    return found


class Proc:
    """One transcoder or consumer, restartable; each incarnation logs to its own file."""

    def __init__(self, name, argv, env):
        self.name, self.argv, self.env = name, argv, env
        self.incarnation, self.popen, self.logs = 0, None, []

    def start(self):
        self.incarnation += 1
        base = f"{WORK}/{self.name}.{self.incarnation}"
        self.logs.append(base + ".log")
        self.out = base + ".out"
        self.popen = subprocess.Popen(self.argv, env=self.env, stdout=open(self.out, "w"),
                                      stderr=open(base + ".log", "w"))

    @property
    def pid(self):
        return self.popen.pid

    def encoding(self):
        return any(name == "ffmpeg" for _, name in children(self.pid))

    def current_source(self):
        """The source of the last job span in this incarnation's log."""
        source = None
        for line in open(self.logs[-1], errors="replace"):
            try:
                span = json.loads(line).get("span") or {}
            except ValueError:
                continue
            source = span.get("source", source)
        return (source or "?").replace(f"s3://{RAW}/", "")

    def stop(self, sig=signal.SIGTERM, wait=15):
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(wait)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


class Transcoder(Proc):
    def start(self):
        super().start()
        for _ in range(300):
            text = open(self.out).read()
            if text.startswith("listening on "):
                address = text.split()[2]
                # A restart takes the same port: the consumers know it by that.
                self.argv = [a if not a.startswith("127.0.0.1:") else address for a in self.argv]
                self.endpoint = "http://" + address
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        sys.exit(f"{self.name} did not start: {open(self.logs[-1]).read()[-500:]}")


def json_lines(paths):
    for path in paths:
        for line in open(path, errors="replace"):
            if line.startswith("{"):
                try:
                    yield json.loads(line)
                except ValueError:
                    pass


# ---------------------------------------------------------------- watching S3


class Watch:
    """Lists the output bucket every POLL_PERIOD and reads every manifest.json whose ETag
    changed: the latest record per prefix, and every record seen (its history)."""

    def __init__(self, prefixes):
        self.prefixes = prefixes
        self.lock = threading.Lock()
        self.listing = {}
        self.records = {}
        self.history = defaultdict(list)
        self.manifest_etags = {}
        self.stop = threading.Event()
        self.client = boto3.client("s3", config=config)

    def list(self):
        objects = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=OUT, Prefix=OUTPUT_PREFIX):
            for item in page.get("Contents", []):
                objects[item["Key"]] = item["ETag"]
        return objects

    def read(self, prefix):
        try:
            body = self.client.get_object(Bucket=OUT, Key=prefix + "manifest.json")["Body"].read()
            return json.loads(body)
        except (ClientError, ValueError):
            return None

    def once(self):
        listing = self.list()
        for prefix in self.prefixes:
            etag = listing.get(prefix + "manifest.json")
            if etag and etag != self.manifest_etags.get(prefix):
                record = self.read(prefix)
                if record:
                    with self.lock:
                        self.manifest_etags[prefix] = etag
                        self.records[prefix] = record
                        self.history[prefix].append((now(), record))
        with self.lock:
            self.listing = listing

    def run(self):
        while not self.stop.is_set():
            started = time.time()
            try:
                self.once()
            except Exception as error:  # moto busy: try again next period
                log(f"watch: {error}")
            self.stop.wait(max(0.0, POLL_PERIOD - (time.time() - started)))

    def record(self, prefix):
        with self.lock:
            return self.records.get(prefix)


def playlist_uris(text):
    """Every URI a playlist names: its URI lines and URI="..." attributes."""
    uris = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if not line.startswith("#"):
            uris.append(line)
        elif 'URI="' in line:
            uris.append(line.split('URI="', 1)[1].split('"', 1)[0])
    return uris


def resolve(base_key, uri):
    return posixpath.normpath(posixpath.join(posixpath.dirname(base_key), uri))


class Poller:
    """A player's eye: every POLL_PERIOD, for every prefix with a stable master.m3u8, the master,
    every media playlist it names, and a listing taken after them that must hold every
    segment those name."""

    def __init__(self, watch):
        self.watch = watch
        self.client = boto3.client("s3", config=config)
        self.stop = threading.Event()
        self.rounds = self.checks = 0
        self.round_seconds = []
        self.failures = []
        self.seen_master = set()
        self.withdrawn = []

    def get(self, key):
        try:
            return self.client.get_object(Bucket=OUT, Key=key)["Body"].read().decode("utf-8", "replace")
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise

    def check(self, prefix):
        master_key = prefix + "master.m3u8"
        master = self.get(master_key)
        if master is None:
            return ("absent", None)
        problems, segments = [], []
        variants = playlist_uris(master)
        if not variants:
            problems.append("the master names no playlist")
        for uri in variants:
            if "://" in uri:
                problems.append(f"absolute URI {uri}")
                continue
            key = resolve(master_key, uri)
            media = self.get(key)
            if media is None:
                problems.append(f"{key[len(prefix):]}: media playlist missing")
                continue
            segments += [resolve(key, s) for s in playlist_uris(media) if "://" not in s]
        if segments:
            present = set()
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=OUT, Prefix=prefix):
                present.update(item["Key"] for item in page.get("Contents", []))
            missing = [s for s in segments if s not in present]
            if missing:
                problems.append(f"{len(missing)} of {len(segments)} segments missing, e.g. {missing[0][len(prefix):]}")
        if problems:
            after = self.get(master_key)
            note = "unchanged" if after == master else ("withdrawn since" if after is None else "replaced since")
            return ("unplayable", f"{'; '.join(problems)} (master {note}; it named {variants[0] if variants else '-'})")
        return ("ok", None)

    def run(self):
        with ThreadPoolExecutor(3) as pool:
            while not self.stop.is_set():
                started = time.time()
                with self.watch.lock:
                    listing = set(self.watch.listing)
                prefixes = [p for p in self.watch.prefixes
                            if p + "master.m3u8" in listing or p in self.seen_master]
                try:
                    results = list(pool.map(lambda p: (p, self.check(p)), prefixes))
                except Exception as error:
                    log(f"poller: {error}")
                    results = []
                at = now()
                for prefix, (state, detail) in results:
                    if state == "absent":
                        if prefix in self.seen_master:
                            self.seen_master.discard(prefix)
                            self.withdrawn.append((at, prefix))
                        continue
                    self.seen_master.add(prefix)
                    self.checks += 1
                    if state == "unplayable":
                        self.failures.append((at, prefix, detail))
                        log(f"UNPLAYABLE {prefix}: {detail}")
                self.rounds += 1
                self.round_seconds.append(time.time() - started)
                self.stop.wait(max(0.0, POLL_PERIOD - (time.time() - started)))


# ---------------------------------------------------------------- the run


def queue_counts(url):
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def main():
    n = args.uploads
    log("making the clips...")
    clips = make_clips(n)
    liar = make_liar()
    keys = [f"chaos/clip-{i:04d}.mp4" for i in range(n)]
    liar_key = "chaos/liar.mp4"
    invalid_index = 1
    invalid_key = keys[invalid_index]
    prefixes = [prefix_of(k) for k in keys + [liar_key]]

    # The visibility timeout the brief asks for (local_stack.py sets 120 s).
    sqs.set_queue_attributes(QueueUrl=QUEUE_URL, Attributes={"VisibilityTimeout": QUEUE_VISIBILITY})

    base_env = {**os.environ, "OUTPUT_PREFIX": OUTPUT_PREFIX, "RUST_LOG": "info", "LOG_FORMAT": "json"}
    transcoder_env = {**base_env, "TRANSCODER_PREFIX_LEASE_SECONDS": "10",
                      "QUEUE_MAX_RECEIVE_COUNT": "5", "TRANSCODER_PRESET": "ultrafast"}
    transcoders = [Transcoder(f"t{i + 1}", [args.transcoder, "serve", "--listen", "127.0.0.1:0",
                                            "--max-jobs", "1"], transcoder_env) for i in range(3)]
    for t in transcoders:
        t.start()
    endpoints = ",".join(t.endpoint for t in transcoders)
    consumer_env = {**base_env, "DISPATCH_MODE": "grpc", "TRANSCODER_ENDPOINTS": endpoints,
                    "POLL_WAIT_SECONDS": "1", "TRANSCODER_HEALTH_SECONDS": "1"}
    consumers = [Proc(f"c{i + 1}", [args.consumer], consumer_env) for i in range(2)]
    for c in consumers:
        c.start()
    log(f"3 transcoders ({endpoints}) and 2 consumers started")

    watch = Watch(prefixes)
    poller = Poller(watch)
    threads = [threading.Thread(target=watch.run, daemon=True),
               threading.Thread(target=poller.run, daemon=True)]
    for thread in threads:
        thread.start()

    etags = defaultdict(list)  # key -> ETags of every PUT, in order
    puts = []

    seconds_of = {}  # ETag -> length of a clip's bytes

    def put(key, body, why, seconds=None):
        etag = strip(s3.put_object(Bucket=RAW, Key=key, Body=body)["ETag"])
        etags[key].append(etag)
        seconds_of[etag] = seconds
        puts.append((now(), key, why, etag))
        return etag

    faults = []

    def fault(text):
        faults.append(f"{now():6.1f} s  {text}")
        log(text)

    # The burst: every clip at once, the lying file in the middle.
    start = now()
    for i, key in enumerate(keys):
        put(key, clips[(i, "v1")], "upload", clip_seconds(i, "v1"))
        if i == n // 2:
            put(liar_key, liar, "lying duration")
    fault(f"burst: {n} clips and the lying file {liar_key} uploaded in {now() - start:.1f} s (3 slots)")

    pending_reuploads = {i for i in range(0, n, 5)}
    reuploads_in_flight = []
    reuploads_late = []
    invalid_done = False
    actions = []  # (at, what, fn): restarts and SIGCONT, due later
    stage = 0  # 0: kill a transcoder, 1: kill a consumer, 2: freeze a transcoder, 3: all done
    reached_at = None  # when the current stage's threshold was reached
    thresholds = [0.2, 0.35, 0.5]
    frozen = None
    deadline = time.time() + TIMEOUT
    finished = False
    final_since = None

    def done_count():
        with watch.lock:
            return sum(1 for r in watch.records.values() if r.get("status") == "done")

    def superseded(key):
        """True while the first job of a re-uploaded key is `processing` its first bytes."""
        if len(etags.get(key, [])) < 2:
            return False
        record = watch.read(prefix_of(key))
        return bool(record) and record["status"] == "processing" and strip(record["source"].get("etag")) == etags[key][0]

    def final(key):
        record = watch.record(prefix_of(key))
        return (record is not None and strip(record["source"].get("etag")) == etags[key][-1]
                and record["status"] in ("done", "failed", "dead_lettered"))

    while time.time() < deadline:
        # Re-uploads of every fifth key while its first job is in flight.
        for i in sorted(pending_reuploads):
            record = watch.read(prefix_of(keys[i]))
            if not record or strip(record["source"].get("etag")) != etags[keys[i]][0]:
                continue
            if record["status"] == "processing":
                put(keys[i], clips[(i, "v2")], "re-upload mid-job", clip_seconds(i, "v2"))
                reuploads_in_flight.append(keys[i])
            elif record["status"] in ("done", "failed", "dead_lettered", "cancelled", "retrying"):
                put(keys[i], clips[(i, "v2")], "re-upload after the first job ended", clip_seconds(i, "v2"))
                reuploads_late.append(f"{keys[i]} ({record['status']})")
            else:
                continue
            pending_reuploads.discard(i)
        # Invalid bytes over a key whose good version is out.
        if not invalid_done:
            record = watch.read(prefix_of(invalid_key))
            if record and record["status"] == "done" and strip(record["source"].get("etag")) == etags[invalid_key][0]:
                put(invalid_key, b"meeting notes\nnot a video at all\n", "invalid re-upload")
                fault(f"text file uploaded over {invalid_key}, whose good version {record.get('version')} is done")
                invalid_done = True
        # The process faults, one after the other as the run progresses.
        done = done_count()
        if stage < 3 and done >= thresholds[stage] * n:
            reached_at = reached_at or now()
            busy = [t for t in transcoders if t.popen.poll() is None and t.encoding()]
            # The freeze prefers a job whose key was re-uploaded meanwhile: the newer upload's
            # job can take the prefix while the frozen one holds it.
            contested = [t for t in busy if stage == 2 and superseded(t.current_source())]
            if stage in (0, 2) and not busy and now() - reached_at < 30:
                pass  # wait for an ffmpeg to hit
            elif stage == 2 and not contested and now() - reached_at < 15:
                pass
            elif stage == 0:
                victim = (busy or transcoders)[0]
                source = victim.current_source()
                victim.popen.send_signal(signal.SIGKILL)
                victim.popen.wait()
                fault(f"SIGKILL {victim.name} (pid {victim.pid}) {'while its ffmpeg encoded' if busy else 'with no ffmpeg running'} {source}; {done} done")
                actions.append((now() + 2, f"{victim.name} restarted on {victim.endpoint}", victim.start))
                stage, reached_at = 1, None
            elif stage == 1:
                victim = consumers[0]
                victim.popen.send_signal(signal.SIGKILL)
                victim.popen.wait()
                fault(f"SIGKILL consumer {victim.name} (pid {victim.pid}); {done} done")
                actions.append((now() + 2, f"consumer {victim.name} restarted", victim.start))
                stage, reached_at = 2, None
            elif stage == 2:
                frozen = (contested or busy or transcoders)[-1]
                source = frozen.current_source()
                os.kill(frozen.pid, signal.SIGSTOP)
                how = ("while its ffmpeg encoded the first upload of the re-uploaded" if contested else
                       "while its ffmpeg encoded" if busy else "with no ffmpeg running")
                fault(f"SIGSTOP {frozen.name} (pid {frozen.pid}) {how} {source}; {done} done")
                actions.append((now() + FREEZE_SECONDS, f"SIGCONT {frozen.name} after {FREEZE_SECONDS:.0f} s",
                                lambda pid=frozen.pid: os.kill(pid, signal.SIGCONT)))
                stage, reached_at = 3, None
        for action in [a for a in actions if a[0] <= now()]:
            actions.remove(action)
            action[2]()
            fault(action[1])
        # The end: every record final for its key's last bytes, both queues empty, every
        # fault played out.
        # Messages may still come back once every record is final (a hold of 60 s in a killed
        # consumer, a visibility of 30 s): they get QUEUE_GRACE, then the queues are reported.
        if stage == 3 and not actions and not pending_reuploads and invalid_done:
            if all(final(k) for k in keys + [liar_key]):
                final_since = final_since or now()
                empty = queue_counts(QUEUE_URL) == (0, 0) and queue_counts(DLQ_URL) == (0, 0)
                if empty or now() - final_since > QUEUE_GRACE:
                    finished = True
                    break
            else:
                final_since = None
        time.sleep(0.2)
    end = now()
    if not finished:
        fault(f"TIMED OUT after {TIMEOUT:.0f} s")
    elif final_since is not None and now() - final_since > QUEUE_GRACE:
        fault(f"every record final, but the queues were not empty {QUEUE_GRACE} s later")
    else:
        fault("every record final and both queues empty")
    # Two more poller rounds over the final state, then stop watching.
    time.sleep(2 * POLL_PERIOD + 0.5)
    poller.stop.set()
    watch.stop.set()
    for thread in threads:
        thread.join(30)
    if frozen is not None and frozen.popen.poll() is None:
        os.kill(frozen.pid, signal.SIGCONT)

    return report(locals())


def report(run):
    n, keys, liar_key, invalid_key = run["n"], run["keys"], run["liar_key"], run["invalid_key"]
    etags, puts, watch, poller = run["etags"], run["puts"], run["watch"], run["poller"]
    seconds_of = run["seconds_of"]
    transcoders, consumers = run["transcoders"], run["consumers"]
    all_keys = keys + [liar_key]

    # Counted before anything stops.
    queue, dlq = queue_counts(QUEUE_URL), queue_counts(DLQ_URL)
    dead_letters = []
    if sum(dlq):
        for m in sqs.receive_message(QueueUrl=DLQ_URL, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", []):
            dead_letters.append(m["Body"][:200])
    current = {k: strip(s3.head_object(Bucket=RAW, Key=k)["ETag"]) for k in all_keys}
    watch.once()
    records = {k: watch.record(prefix_of(k)) for k in all_keys}

    for c in consumers:
        c.stop()
    for t in transcoders:
        t.stop()

    # Done, failed, lost.
    done, failed, lost, expected_failures = [], [], [], {}
    for key in all_keys:
        record = records[key]
        status = record and record["status"]
        same = record is not None and strip(record["source"].get("etag")) == current[key]
        if status == "done" and same:
            done.append(key)
            continue
        if status == "failed" and same:
            error = record.get("error") or {}
            failed.append((key, f"{error.get('kind')}: {error.get('message')}"))
            if key in (liar_key, invalid_key) and error.get("kind") == "invalid_input":
                expected_failures[key] = record
                continue
        lost.append(f"{key}: record {status} for ETag {record and strip(record['source'].get('etag'))}, "
                    f"raw bytes now {current[key]}")
    unexpected_failed = [f for f in failed if f[0] not in expected_failures]

    # Duplicate encodes: complete versions (a poster in the version folder: written after every
    # rung, before the switch) per key, told apart two ways: by the source ETag of the records
    # that named the version (each job's `processing` record names it), and by the length its
    # VOD playlist adds up to (a re-upload is never as long as the first upload).
    version_etag = {}
    for prefix, seen in watch.history.items():
        for _, record in seen:
            if record.get("version"):
                version_etag[(prefix, record["version"])] = strip(record["source"].get("etag"))
    listing = watch.list()
    versions = defaultdict(dict)  # key -> version -> (ETag by record, seconds by playlist)
    for key in all_keys:
        prefix = prefix_of(key)
        for obj in listing:
            rest = obj[len(prefix):] if obj.startswith(prefix) else ""
            if rest.startswith("_v") and rest.endswith("/poster.jpg"):
                version = rest.split("/")[0]
                media = [o for o in listing if o.startswith(f"{prefix}{version}/") and o.endswith("/index.m3u8")]
                seconds = None
                if media:
                    text = s3.get_object(Bucket=OUT, Key=media[0])["Body"].read().decode()
                    seconds = round(sum(float(l[8:].split(",")[0]) for l in text.splitlines() if l.startswith("#EXTINF:")))
                versions[key][version] = (version_etag.get((prefix, version), "?"), seconds)
    duplicates, unattributed = [], []
    for key, found in sorted(versions.items()):
        by_etag, by_seconds = defaultdict(list), defaultdict(list)
        for version, (etag, seconds) in sorted(found.items()):
            if etag == "?":
                unattributed.append(f"{key} {version}")
            else:
                by_etag[etag].append(version)
            by_seconds[seconds].append(version)
        if any(len(v) > 1 for v in by_etag.values()) or any(len(v) > 1 for v in by_seconds.values()):
            duplicates.append(f"{key}: " + ", ".join(f"{v} (ETag {e}, {s} s)" for v, (e, s) in sorted(found.items())))
    published = sum(len(v) for v in versions.values())
    # A record that names other bytes than it encoded: its length against its ETag's.
    mislabelled = set()
    for prefix, seen in watch.history.items():
        for _, record in seen:
            etag, length = strip(record["source"].get("etag")), record.get("duration_s")
            if record["status"] == "done" and seconds_of.get(etag) and length is not None \
                    and round(length) != seconds_of[etag]:
                mislabelled.add(f"{prefix} job {record['job_id'][:8]}: ETag {etag} is {seconds_of[etag]} s, "
                                f"the job encoded {length:.1f} s")

    # What each stable master serves: the version its record says is published, every media
    # playlist finished (ENDLIST); no master where nothing was ever published.
    serving = []
    for key in all_keys:
        record, prefix = records[key], prefix_of(key)
        want = record and record.get("published_version")
        try:
            master = s3.get_object(Bucket=OUT, Key=prefix + "master.m3u8")["Body"].read().decode()
        except ClientError:
            master = None
        if master is None:
            if want:
                serving.append(f"{key}: no stable master, the record says {want} is published")
            continue
        uris = playlist_uris(master)
        served = uris[0].split("/")[0] if uris else None
        if served != want:
            serving.append(f"{key}: the stable master serves {served}, the record ({record and record['status']}) says {want}")
        for uri in uris:
            try:
                media = s3.get_object(Bucket=OUT, Key=resolve(prefix + "master.m3u8", uri))["Body"].read().decode()
            except ClientError:
                media = ""
            if "#EXT-X-ENDLIST" not in media:
                head = s3.head_object(Bucket=OUT, Key=resolve(prefix + "master.m3u8", uri)) if media else {}
                serving.append(f"{key}: {uri} is not a finished VOD playlist (record {record and record['status']}, "
                               f"playlist written {head.get('LastModified')}, record updated "
                               f"{record and record.get('updated_at')}): " + " | ".join(media.splitlines()))

    # What the logs say.
    tlines = list(json_lines([p for t in transcoders for p in t.logs]))
    clines = list(json_lines([p for c in consumers for p in c.logs]))
    msg = lambda line: line.get("fields", {}).get("message", "")
    logged_published = sum(1 for l in tlines if msg(l) == "job done" and l["fields"].get("already_done") is False)
    logged_already = sum(1 for l in tlines if msg(l) == "job done" and l["fields"].get("already_done") is True)
    logged_failed = defaultdict(int)
    for l in tlines:
        if msg(l) == "job failed":
            logged_failed[l["fields"].get("error", "")[:90]] += 1
    logged_cancelled = sum(1 for l in tlines if msg(l) == "job cancelled")
    lost_prefix = [l for l in tlines if msg(l).startswith("lost the output prefix")]
    handed_over = sum(1 for l in clines if msg(l) == "job handed over")
    streams_lost = sum(1 for l in clines if msg(l).startswith("lost the job's stream"))
    deliveries = defaultdict(int)  # message id -> highest receive count a consumer saw
    for l in clines:
        for span in l.get("spans", []):
            if "receive_count" in span:
                deliveries[span["message_id"]] = max(deliveries[span["message_id"]], int(span["receive_count"]))
    redelivered = sum(1 for c in deliveries.values() if c > 1)
    processing = [k for k in all_keys if records[k] and records[k]["status"] == "processing"]
    other_status = {k: records[k]["status"] for k in all_keys
                    if records[k] and records[k]["status"] not in ("done", "failed", "processing")}
    no_record = [k for k in all_keys if records[k] is None]

    reuploads = [p for p in puts if p[2].startswith("re-upload")]
    out = []
    p = out.append
    p(f"chaos run: {n} clips + 1 lying file; 2 consumers (grpc), 3 transcoders (--max-jobs 1)")
    p("faults:")
    for line in run["faults"]:
        p(f"  {line}")
    p(f"uploads = {len(puts)} PUTs over {len(all_keys)} keys: {n} clips in one burst, the lying file, "
      f"{len(reuploads)} re-uploads of every fifth key ({len(run['reuploads_in_flight'])} while the first job was "
      f"processing{', late: ' + ', '.join(run['reuploads_late']) if run['reuploads_late'] else ''}), 1 invalid re-upload")
    p(f"ended after {run['end']:.1f} s")
    p(f"done = {len(done)} (records `done` for their key's final bytes; {n - 1} expected)")
    p(f"failed = {len(failed)}")
    for key, why in failed:
        label = ("expected: the lying file" if key == liar_key else
                 "expected: the invalid re-upload" if key == invalid_key and key in expected_failures else "UNEXPECTED")
        p(f"  {key} ({label}): {why[:160]}")
    inv = records[invalid_key]
    if inv:
        p(f"  {invalid_key}: published_version {inv.get('published_version')} still served "
          f"(its record's version {inv.get('version')})")
    missing_expected = [k for k in (liar_key, invalid_key) if k not in expected_failures]
    for key in missing_expected:
        p(f"  NOT failed as expected: {key}: record {records[key] and records[key]['status']}")
    def history(key):
        """The records seen at a key's prefix, in order: the evidence for a flagged key."""
        return "; ".join(f"{at:.1f} s {r['status']} job {r['job_id'][:8]} ETag {strip(r['source'].get('etag'))[:8]} "
                         f"{r.get('version') or ''}" for at, r in watch.history[prefix_of(key)])

    p(f"duplicate encodes = {len(duplicates)}")
    for d in duplicates:
        p(f"  {d}")
        p(f"    records seen: {history(d.split(':')[0])}")
    p(f"  (complete versions {published}; transcoders' \"job done\" lines: {logged_published} published, "
      f"{logged_already} already done{'; versions of unknown ETag: ' + ', '.join(unattributed) if unattributed else ''})")
    if mislabelled:
        p(f"  records naming other bytes than they encoded: {len(mislabelled)}")
        for line in sorted(mislabelled):
            p(f"    {line}")
    p(f"lost = {len(lost)}")
    for line in lost:
        p(f"  {line}")
        p(f"    records seen: {history(line.split(':')[0])}")
    rounds = poller.round_seconds
    p(f"masters not serving their record's version = {len(serving)}")
    for line in serving[:10]:
        p(f"  {line}")
    p(f"moments unplayable = {len(poller.failures)} ({poller.checks} master checks in {poller.rounds} rounds, "
      f"a round every {sum(rounds) / max(1, len(rounds)) if rounds else 0:.2f} s on average, "
      f"longest {max(rounds, default=0):.2f} s)")
    for at, prefix, detail in poller.failures[:5]:
        p(f"  {at:6.1f} s {prefix}: {detail}")
    if poller.withdrawn:
        p(f"  stable masters that went away: " + ", ".join(f"{pr} at {at:.1f} s" for at, pr in poller.withdrawn[:5]))
    p(f"uploads queue = {queue[0]} visible, {queue[1]} in flight")
    p(f"dead-letter queue = {dlq[0]} visible, {dlq[1]} in flight")
    for body in dead_letters[:5]:
        p(f"  {body}")
    p(f"records processing = {len(processing)}{' ' + ', '.join(processing) if processing else ''}")
    if other_status or no_record:
        p(f"  other records: {other_status}; no record: {no_record}")
    p(f"logs: consumers handed over {handed_over} jobs, lost {streams_lost} streams, saw {len(deliveries)} messages, "
      f"{redelivered} delivered more than once (at most {max(deliveries.values(), default=0)} times); transcoders: "
      f"{logged_cancelled} cancelled, {len(lost_prefix)} lost their prefix, failed: "
      + "; ".join(f"{c} x {e}" for e, c in sorted(logged_failed.items(), key=lambda x: -x[1])))
    ok = (not duplicates and not mislabelled and not lost and not serving and not poller.failures and queue == (0, 0) and dlq == (0, 0)
          and not processing and not unexpected_failed and not missing_expected and run["finished"])
    p("targets met: " + ("yes" if ok else "NO"))
    print("\n".join(out), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
