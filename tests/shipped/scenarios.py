"""Short runs of the pipeline that between them use every permission the stack's roles grant,
each returning what went wrong (nothing, when all is well). test_iam_bites runs them with one
statement removed at a time; each removal must show up as a problem."""

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


def warm(p):
    """Warm transcoders and the consumer (auto), DELETE_SOURCE on: a good upload is published,
    its source goes and a `done` event is sent; an upload deleted before its turn fails at
    once as invalid input (a 404; without s3:ListBucket S3 answers 403, which is retried)."""
    p.warm_transcoders(2)
    p.consumer(extra={"DELETE_SOURCE": "true"})
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
