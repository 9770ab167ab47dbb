"""Short runs of the pipeline that between them use every permission the stack's roles grant,
each returning what went wrong (nothing, when all is well). test_iam_bites runs them with one
statement removed at a time; each removal must show up as a problem."""

import json
import time

from media import make_clip

DEADLINE_S = 60


def _watch(p, checks, deadline_s=DEADLINE_S):
    """Polls `checks` (name -> callable returning True when met) until all are met, IAM has
    refused something (no need to wait out the deadline then), or the deadline passes.
    Returns the problems: unmet checks, and every refusal seen."""
    deadline = time.time() + deadline_s
    met = set()
    while time.time() < deadline:
        for name, check in checks.items():
            if name not in met and check():
                met.add(name)
        denials = p.denials()
        if denials:
            time.sleep(1)  # let the rest of what a refusal causes show
            return [f"not met: {n}" for n in checks if n not in met] + p.denials()
        if len(met) == len(checks):
            return []
        time.sleep(0.5)
    return [f"not met: {n}" for n in checks if n not in met]


def _status_is(p, key, status):
    record = p.manifest(key)
    return bool(record) and record["status"] == status


def _event(p, key, status):
    """Whether a status event says `status` for `key` (events are kept across calls: the
    queue gives each once)."""
    p.seen_events = getattr(p, "seen_events", []) + p.status_events()
    return any(e["key"] == key and e["status"] == status for e in p.seen_events)


def _abandoned(p, key):
    """What a job SIGKILLed on its last delivery leaves: a `processing` record, a lapsed
    lease, and its upload's message in the dead-letter queue."""
    prefix = p.prefix(key)
    record = {"status": "processing", "job_id": "killed-job", "renditions": [],
              "source": {"bucket": p.raw, "key": key, "etag": None, "size": 10},
              "master_playlist": None, "poster": None, "duration_s": None, "error": None,
              "attempts": 5, "created_at": "2026-01-01T00:00:00Z",
              "updated_at": "2026-01-01T00:00:00Z"}
    lease = {"job_id": "killed-job", "version": "_v20260101T000000Z-00000000",
             "expires_at": "2026-01-01T00:01:30Z"}
    p.s3.put_object(Bucket=p.out, Key=prefix + "manifest.json", Body=json.dumps(record))
    p.s3.put_object(Bucket=p.out, Key=prefix + "lease.json", Body=json.dumps(lease))
    upload = {"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
              "s3": {"bucket": {"name": p.raw}, "object": {"key": key, "size": 10}}}
    p.sqs.send_message(QueueUrl=p.dlq, MessageBody=json.dumps({"Records": [upload]}))


def warm(p):
    """Warm transcoders and the consumer (auto), DELETE_SOURCE on: a good upload is published,
    its source goes and a `done` event is sent; an upload deleted before its turn fails at
    once as invalid input (a 404; without s3:ListBucket S3 answers 403, which is retried).
    The consumer's dead-letter sweep marks the record of a job killed on its last delivery."""
    _abandoned(p, "uploads/killed.mp4")
    p.warm_transcoders(2)
    p.consumer(extra={"DELETE_SOURCE": "true", "DEAD_LETTER_SWEEP_SECONDS": "1"})
    clip = make_clip(p.scratch / "warm.mp4", seconds=2)
    p.upload("uploads/warm.mp4", clip)
    p.upload("uploads/gone.mp4", clip)
    p.s3.delete_object(Bucket=p.raw, Key="uploads/gone.mp4")
    return _watch(p, {
        "published": lambda: _status_is(p, "uploads/warm.mp4", "done"),
        "a deleted upload fails at once": lambda: _event(p, "uploads/gone.mp4", "failed"),
        "source deleted": lambda: not p.source_exists("uploads/warm.mp4"),
        "done event": lambda: _event(p, "uploads/warm.mp4", "done"),
        "queue drained": lambda: p.queue_counts(p.queue) == (0, 0),
        "abandoned record marked": lambda: _status_is(p, "uploads/killed.mp4", "dead_lettered"),
    })


def ecs(p):
    """The consumer (DispatchMode=ecs) starts a task that transcodes, deletes its source and
    its message, and sends a `done` event."""
    agent = p.ecs_agent()
    p.consumer(extra={"DELETE_SOURCE": "true"}, DispatchMode="ecs")
    clip = make_clip(p.scratch / "task.mp4", seconds=2)
    p.upload("uploads/task.mp4", clip)
    return _watch(p, {
        "task started": lambda: len(agent.containers) == 1,
        "published": lambda: _status_is(p, "uploads/task.mp4", "done"),
        "task exited 0": lambda: any(c.process.poll() == 0 for c in agent.containers.values()),
        "source deleted": lambda: not p.source_exists("uploads/task.mp4"),
        "done event": lambda: _event(p, "uploads/task.mp4", "done"),
        "queue drained": lambda: p.queue_counts(p.queue) == (0, 0),
    })


def split(p):
    """A warm transcoder (the stack's SPLIT_TASKS and ECS_* settings, SPLIT_MIN_SECONDS lowered
    for a short clip) splits a long upload and starts one-shot range tasks, which run
    `transcoder run-range` with the transcoder role, leave their results, and exit 0; the
    coordinator reads each result (following the task with DescribeTasks), removes it, and
    publishes the joined stream."""
    agent = p.ecs_agent()
    p.warm_transcoders(1, extra={"SPLIT_MIN_SECONDS": "20", "AWS_ENDPOINT_URL_ECS": p.gate.endpoint})
    p.consumer(DispatchMode="grpc")
    clip = make_clip(p.scratch / "long.mp4", seconds=40)
    p.upload("uploads/long.mp4", clip)
    prefix = p.prefix("uploads/long.mp4")

    def range_tasks():
        return [c for c in agent.containers.values() if "run-range" in c.argv]

    def results_left():
        listed = p.s3.list_objects_v2(Bucket=p.out, Prefix=prefix).get("Contents", [])
        return [o["Key"] for o in listed if "/ranges/" in o["Key"]]

    return _watch(p, {
        "range tasks started": lambda: len(range_tasks()) >= 1,
        "published": lambda: _status_is(p, "uploads/long.mp4", "done"),
        "every range task exited 0": lambda: bool(range_tasks()) and all(
            c.process.poll() == 0 for c in range_tasks()),
        "no range result left": lambda: _status_is(p, "uploads/long.mp4", "done")
        and not results_left(),
        "queue drained": lambda: p.queue_counts(p.queue) == (0, 0),
    }, deadline_s=120)
