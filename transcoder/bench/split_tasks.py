"""The runs of transcoder/bench/split_tasks.sh: a long upload through the pipeline (moto S3, SQS
and ECS, one consumer in grpc mode, one warm transcoder with SPLIT_TASKS=N) finished by range
tasks that a stand-in for the ECS agent runs, N at a time; against the one-pass encode of the
same source. Run by split_tasks.sh with the moto virtualenv's Python, after
`local_stack.py setup --ecs` (QUEUE_URL, RAW_BUCKET, OUTPUT_BUCKET, ECS_* and AWS_* in the
environment).

  split_tasks.py --work DIR --transcoder PATH --consumer PATH --source FILE --runners "1 2 4"

Exit 0 when every job ran (whatever the figures), 1 when a job failed or timed out.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

import boto3

from split import plan  # the coordinator's range plan, as split.py models it

POLL = 0.5
ENDED_BADLY = ("failed", "retrying", "dead_lettered", "cancelled")
# Fargate's time from RunTask to a running container, not measurable here (the harness starts
# a process at once). The projection prints its figures without it and with this much more for
# every task range (each is a new task), an assumed figure: Fargate typically starts a task of
# an image this size in 30 to 60 s.
FARGATE_START_S = 40.0

ap = argparse.ArgumentParser()
ap.add_argument("--work", required=True)
ap.add_argument("--transcoder", required=True)
ap.add_argument("--consumer", required=True)
ap.add_argument("--source", required=True)
ap.add_argument("--runners", default="1 2 4")
args = ap.parse_args()
T0 = time.monotonic()
s3, ecs = boto3.client("s3"), boto3.client("ecs")
RAW, OUT, CLUSTER = os.environ["RAW_BUCKET"], os.environ["OUTPUT_BUCKET"], os.environ["ECS_CLUSTER"]


def log(text):
    print(f"[{time.monotonic() - T0:7.1f} s] {text}", file=sys.stderr, flush=True)


def product_env(**extra):
    """This environment without any encode or split knob: the product's defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRANSCODER_", "SPLIT_"))}
    env.update({"LOG_FORMAT": "json", "RUST_LOG": "warn,transcoder=info"})
    env.update(extra)
    return env


def cpu_busy():
    """Seconds every core spent busy since boot (from /proc/stat)."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class TaskRunners:
    """The stand-in for the ECS agent (a benchmark harness, named as one): moto records the
    tasks RunTask starts and runs nothing, so this starts each new task's container command as
    a process (the task definition's command unless the overrides give one, the overrides'
    environment on top), at most `runners` at once, and stops the task when it exits."""

    def __init__(self, runners, log_dir):
        self.runners, self.log_dir = runners, log_dir
        # Tasks run until StopTask, as ECS's run until their container exits (moto otherwise
        # walks a task to STOPPED after four DescribeTasks).
        request = urllib.request.Request(
            os.environ["AWS_ENDPOINT_URL"] + "/moto-api/state-manager/set-transition", method="POST",
            data=json.dumps({"model_name": "ecs::task",
                             "transition": {"progression": "manual", "times": 10**9}}).encode(),
            headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()
        # Tasks of earlier runs stay listed in moto's cluster: they are not this run's to start.
        self.seen = set(ecs.list_tasks(cluster=CLUSTER)["taskArns"])
        self.waiting, self.running, self.done = [], [], []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.thread.join()
        for task in self.running:
            task["process"].kill()

    def watch(self):
        while not self.stopping.is_set():
            for task in list(self.running):
                if task["process"].poll() is not None:
                    task["ended"] = time.monotonic()
                    self.running.remove(task)
                    self.done.append(task)
                    ecs.stop_task(cluster=CLUSTER, task=task["arn"],
                                  reason=f"Essential container in task exited (exit code {task['process'].returncode})")
            arns = ecs.list_tasks(cluster=CLUSTER)["taskArns"]
            new = [a for a in arns if a not in self.seen]
            if new:
                for task in ecs.describe_tasks(cluster=CLUSTER, tasks=new)["tasks"]:
                    self.seen.add(task["taskArn"])
                    if task["lastStatus"] != "STOPPED":
                        self.waiting.append(task)
            while self.waiting and len(self.running) < self.runners:
                self.running.append(self.start(self.waiting.pop(0)))
            time.sleep(0.2)

    def start(self, task):
        definition = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
        (container,) = definition["containerDefinitions"]
        override = next((o for o in task.get("overrides", {}).get("containerOverrides", [])
                         if o["name"] == container["name"]), {})
        env = product_env(**{e["name"]: e["value"] for e in container.get("environment", [])})
        env.update({e["name"]: e["value"] for e in override.get("environment", [])})
        command = override.get("command") or container.get("command", [])
        log_path = os.path.join(self.log_dir, task["taskArn"].rsplit("/", 1)[-1] + ".log")
        process = subprocess.Popen([args.transcoder, *command], env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))
        return {"arn": task["taskArn"], "process": process, "log": log_path,
                "started": time.monotonic()}


def json_lines(path, message):
    found = []
    for line in open(path, errors="replace"):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("fields", {}).get("message") == message:
            found.append(entry["fields"])
    return found


def wait_done(key_prefix, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            record = json.loads(s3.get_object(Bucket=OUT, Key=key_prefix + "manifest.json")["Body"].read())
        except s3.exceptions.NoSuchKey:
            record = None
        if record and record["status"] == "done":
            return record
        if record and record["status"] in ENDED_BADLY:
            raise SystemExit(f"the job ended {record['status']}: {record.get('error')}")
        time.sleep(POLL)
    raise SystemExit(f"no done record under {key_prefix} after {timeout:.0f} s")


def serve(env, log_path):
    process = subprocess.Popen([args.transcoder, "serve", "--listen", "127.0.0.1:0"], env=env,
                               stdout=subprocess.PIPE, stderr=open(log_path, "w"), text=True)
    line = process.stdout.readline()
    if not line.startswith("listening on "):
        raise SystemExit(f"serve printed {line!r}; see {log_path}")
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
    return process, "http://" + line.split()[-1]


def split_run(runners, duration):
    """One upload finished by a coordinator and `runners` range tasks; its figures."""
    folder = os.path.join(args.work, f"runners-{runners}")
    os.makedirs(folder)
    coordinator_log = os.path.join(folder, "coordinator.log")
    coordinator, endpoint = serve(product_env(SPLIT_TASKS=str(runners)), coordinator_log)
    consumer = subprocess.Popen([args.consumer], env=product_env(
        DISPATCH_MODE="grpc", TRANSCODER_ENDPOINTS=endpoint, POLL_WAIT_SECONDS="1"),
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(folder, "consumer.log"), "w"))
    agent = TaskRunners(runners, folder)
    key = f"sixty-{runners}.mp4"
    try:
        s3.upload_file(args.source, RAW, key)
        busy, start = cpu_busy(), time.monotonic()
        wait_done(f"{os.environ.get('OUTPUT_PREFIX', '')}sixty-{runners}/", timeout=3 * duration + 600)
        wall, cpu = time.monotonic() - start, cpu_busy() - busy
    finally:
        agent.stop()
        consumer.terminate()
        coordinator.terminate()
        consumer.wait()
        coordinator.wait()
    ranges = json_lines(coordinator_log, "range done")
    encoded = {}
    for task in agent.done:
        for entry in json_lines(task["log"], "range encoded"):
            encoded[entry["range"]] = entry
    for entry in json_lines(coordinator_log, "range encoded"):
        encoded.setdefault(entry["range"], entry)
    return {"runners": runners, "wall": wall, "cpu": cpu, "ranges": ranges, "encoded": encoded,
            "tasks": len(agent.done), "task_walls": [t["ended"] - t["started"] for t in agent.done],
            "failed_tasks": sum(1 for t in agent.done if t["process"].returncode != 0)}


def projected(duration, tasks, speed, fixed, over_task, start=0.0):
    """Seconds for a job with `tasks` range tasks, each on a 2-vCPU task of its own: the
    coordinator's fixed work, then the slowest worker (the coordinator takes the first range
    and then the next free one). A task range costs `start` (RunTask to a running container)
    and `over_task` beyond its encode."""
    lengths = plan(duration, tasks + 1)
    free = [0.0] * (tasks + 1)
    for i, length in enumerate(lengths):
        w = 0 if i == 0 else min(range(tasks + 1), key=lambda k: (free[k], k == 0))
        free[w] += (0.0 if w == 0 else start + over_task) + length / speed
    return fixed + max(free)


def main():
    duration = float(subprocess.check_output(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", args.source], text=True))
    log(f"one pass: transcoder local on the {duration / 60:.0f}-minute source")
    busy, start = cpu_busy(), time.monotonic()
    subprocess.run([args.transcoder, "local", args.source, os.path.join(args.work, "one-pass")],
                   env=product_env(), check=True, stdout=subprocess.DEVNULL,
                   stderr=open(os.path.join(args.work, "one-pass.log"), "w"))
    one_pass, one_pass_cpu = time.monotonic() - start, cpu_busy() - busy
    runs = []
    for runners in [int(n) for n in args.runners.split()]:
        log(f"split over range tasks, {runners} task runner(s)")
        runs.append(split_run(runners, duration))
        log(f"  done in {runs[-1]['wall']:.1f} s, {runs[-1]['tasks']} tasks")

    # The model: a range costs its media at the one-pass speed on 2 cores (what a 2-vCPU task
    # has to itself), plus what a task range cost beyond its encode in the 1-runner run
    # (RunTask, the harness's start, download of the range's bytes, probe, upload, the result's
    # round trip); the coordinator's own work is the 1-runner job less its busiest worker.
    speed = duration / one_pass
    base = runs[0]
    task_rows = [r for r in base["ranges"] if r["worker"].startswith("ecs task")]
    over_task = sum(r["wall_s"] - base["encoded"].get(r["range"], {}).get("encode_s", r["wall_s"])
                    for r in task_rows) / max(1, len(task_rows))
    busiest = {}
    for r in base["ranges"]:
        busiest[r["worker"]] = busiest.get(r["worker"], 0.0) + r["wall_s"]
    fixed = base["wall"] - max(busiest.values())

    print()
    print(f"Split over ECS range tasks: a {duration / 60:.0f}-minute source ({os.path.getsize(args.source) / 1e6:.0f} MB),"
          f" the product's ladder and settings, 2 cores shared by everything")
    print()
    print(f"  one pass (transcoder local)       {one_pass:8.1f} s   CPU {one_pass_cpu:7.0f} s   ({speed:.1f}x real time)")
    print("  task runners  ranges  tasks  done s     CPU s    speedup vs one pass")
    for run in runs:
        failed = f"  ({run['failed_tasks']} tasks failed, their ranges redone)" if run["failed_tasks"] else ""
        print(f"  {run['runners']:<12}  {len(run['ranges']):6}  {run['tasks']:5}  {run['wall']:8.1f}  {run['cpu']:7.0f}"
              f"   {one_pass / run['wall']:.2f}x{failed}")
    print("  Every runner here shares the same 2 cores with the coordinator: the measured speed-up")
    print("  cannot pass 1x by much. What the runs do show is the cost of splitting (CPU s against the")
    print("  one pass) and the per-range costs below, which the projection uses.")
    print()
    print(f"  per task range, beyond its encode: {over_task:.1f} s (1-runner run, {len(task_rows)} task ranges);")
    print(f"  the coordinator's own download, probe, poster and final publish: {fixed:.1f} s")
    print()
    print(f"  projection: each task a 2-vCPU Fargate task of its own, encoding at {speed:.1f}x real time")
    print(f"    tasks  done s   speedup    with {FARGATE_START_S:.0f} s of Fargate start per task range (assumed)")
    for n in (1, 2, 4, 8, 16, 64):
        t = projected(duration, n, speed, fixed, over_task)
        f = projected(duration, n, speed, fixed, over_task, FARGATE_START_S)
        print(f"    {n:<5}  {t:7.1f}   {one_pass / t:6.1f}x    {f:7.1f} s  {one_pass / f:5.1f}x")
    print()
    print("RESULT " + json.dumps({
        "source_s": duration, "one_pass_s": one_pass, "one_pass_cpu_s": one_pass_cpu,
        "runs": [{k: run[k] for k in ("runners", "wall", "cpu", "tasks", "failed_tasks")} | {"ranges": len(run["ranges"])}
                 for run in runs],
        "over_task_s": over_task, "fixed_s": fixed,
        "projected_s": {n: projected(duration, n, speed, fixed, over_task) for n in (1, 2, 4, 8, 16, 64)},
        "projected_with_start_s": {n: projected(duration, n, speed, fixed, over_task, FARGATE_START_S)
                                   for n in (1, 2, 4, 8, 16, 64)},
        "fargate_start_s": FARGATE_START_S,
    }))


if __name__ == "__main__":
    main()
