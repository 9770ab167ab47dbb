"""Plays Fargate for consumer/bench/load.sh: moto's ECS records RunTask and runs nothing, so
this starts `transcoder run` for each new task with exactly the task's container overrides,
at most --parallel at once, and reports, per finished task, its exit code, whether the job
was already published, and its peak memory.

  fargate.py TRANSCODER --parallel N --until-file PATH --report PATH
"""
import argparse
import json
import os
import subprocess
import time

import boto3

parser = argparse.ArgumentParser()
parser.add_argument("transcoder")
parser.add_argument("--parallel", type=int, default=2)
parser.add_argument("--until-file", required=True, help="stop when this file exists")
parser.add_argument("--report", required=True)
parser.add_argument("--cluster", default=os.environ.get("ECS_CLUSTER", "vod"))
args = parser.parse_args()

ecs = boto3.client("ecs")
seen, waiting, running, report = set(), [], {}, []


def hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


while not (os.path.exists(args.until_file) and not waiting and not running):
    arns = [a for page in ecs.get_paginator("list_tasks").paginate(cluster=args.cluster)
            for a in page["taskArns"] if a not in seen]
    for i in range(0, len(arns), 100):
        for task in ecs.describe_tasks(cluster=args.cluster, tasks=arns[i:i + 100])["tasks"]:
            seen.add(task["taskArn"])
            (container,) = task["overrides"]["containerOverrides"]
            env = {kv["name"]: kv["value"] for kv in container.get("environment", [])}
            waiting.append((task["taskArn"], env))
    while waiting and len(running) < args.parallel:
        arn, overrides = waiting.pop(0)
        proc = subprocess.Popen([args.transcoder, "run"], env={**os.environ, **overrides},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        running[proc.pid] = (proc, arn, 0)
    for pid, (proc, arn, peak) in list(running.items()):
        peak = max(peak, hwm_kib(pid))
        if proc.poll() is None:
            running[pid] = (proc, arn, peak)
            continue
        out, err = proc.communicate()
        report.append({"task": arn, "exit": proc.returncode, "peak_kib": peak,
                       "already_done": "already published" in out, "stderr": err.strip()[-300:]})
        del running[pid]
    time.sleep(0.05)

with open(args.report, "w") as f:
    json.dump(report, f)
