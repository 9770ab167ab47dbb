"""The deployed pipeline on one machine: moto with IAM enforced and the stack's roles, the warm
transcoders and the consumer started from the stack's task definitions as their images run
them, each with its own role's credentials, ECS tasks started by the agent stand-in."""

import json
import tempfile
import time
from pathlib import Path

from containers import Container, task_environment
from ecs_agent import EcsAgent
from emulator import Emulator, free_loopback_block
from iam_gate import EcsGate
from media import download_prefix, frames_played

DISCOVERY_NAME = "transcoder.vod.internal"  # Cloud Map's name in the stack (Name=vod)


class Pipeline:
    """Everything one test needs; `close()` stops it all."""

    def __init__(self, drop=()):
        self._scratch = tempfile.TemporaryDirectory(prefix="shipped-")
        self.scratch = Path(self._scratch.name)
        self.block = free_loopback_block()
        self.aws = Emulator(f"{self.block}.1", self.scratch, drop=drop)
        self.gate = EcsGate(self.aws)
        self.s3 = self.aws.client("s3")
        self.sqs = self.aws.client("sqs")
        self.raw = self.aws.refs["RawBucket"]
        self.out = self.aws.refs["OutputBucket"]
        self.queue = self.aws.refs["UploadQueue"]
        self.dlq = self.aws.refs["UploadDeadLetterQueue"]
        self.status_queue = self.aws.refs["StatusQueue"]
        self.containers = []
        self.agent = None

    def close(self):
        if self.agent:
            self.agent.stop()
        for container in self.containers:
            container.stop(grace=5)
        self.gate.stop()
        self.aws.stop()
        self._scratch.cleanup()

    # --- the services ---------------------------------------------------------------------
    def warm_transcoders(self, count=2, extra=None):
        addresses = [f"{self.block}.{2 + i}" for i in range(count)]
        hosts = [(DISCOVERY_NAME, address) for address in addresses]
        container = self.aws.container("TranscoderTaskDefinition")
        started = []
        for i, address in enumerate(addresses):
            env = {**task_environment(container), **self.aws.role_env("TranscoderRole"),
                   **(extra or {})}
            started.append(self._start(
                f"transcoder-{i}", "transcoder.Dockerfile", command=container["Command"],
                entrypoint=container.get("EntryPoint"),
                environment=env, hosts=hosts, listen=address,
                runtime_init=container.get("LinuxParameters", {}).get("InitProcessEnabled", False)))
        for transcoder in started:
            transcoder.wait_healthy()
        return started

    def consumer(self, extra=None, **parameters):
        """The consumer as the stack's task definition starts it (with stack `parameters`,
        e.g. DispatchMode="ecs"), plus `extra` variables an operator might set."""
        container = self.aws.container("ConsumerTaskDefinition", **parameters)
        env = {**task_environment(container), **self.aws.role_env("ConsumerRole"),
               "AWS_ENDPOINT_URL_ECS": self.gate.endpoint, **(extra or {})}
        hosts = [(DISCOVERY_NAME, f"{self.block}.{2 + i}") for i in range(2)]
        return self._start("consumer", "consumer.Dockerfile", command=container.get("Command"),
                           entrypoint=container.get("EntryPoint"),
                           environment=env, hosts=hosts,
                           runtime_init=container.get("LinuxParameters", {}).get("InitProcessEnabled", False))

    def ecs_agent(self):
        self.aws.register_task_definition("TranscoderJobTaskDefinition")
        self.agent = EcsAgent(self.aws, self.scratch, self.aws.refs["Cluster"])
        return self.agent

    def _start(self, name, dockerfile, **how):
        container = Container(name, dockerfile, self.scratch, **how)
        self.containers.append(container)
        return container

    # --- uploads and what comes of them ---------------------------------------------------
    def upload(self, key, path):
        self.s3.upload_file(str(path), self.raw, key)

    def prefix(self, key):
        """Where the stack's OUTPUT_PREFIX puts the outputs of `key`."""
        output_prefix = task_environment(self.aws.container("ConsumerTaskDefinition"))["OUTPUT_PREFIX"]
        return output_prefix + key.rsplit(".", 1)[0] + "/"

    def manifest(self, key):
        try:
            body = self.s3.get_object(Bucket=self.out, Key=self.prefix(key) + "manifest.json")["Body"]
        except self.s3.exceptions.NoSuchKey:
            return None
        return json.loads(body.read())

    def wait_for(self, key, statuses, timeout=120, after=None, after_version=None):
        """The manifest of `key` once its status is one of `statuses` (and, with `after`, its
        etag differs from that one; with `after_version`, its version from that one: a newer
        job's record)."""
        deadline = time.time() + timeout
        record = None
        while time.time() < deadline:
            record = self.manifest(key)
            if record and record["status"] in statuses and (
                    after is None or record["source"].get("etag") != after) and (
                    after_version is None or record.get("version") != after_version):
                return record
            time.sleep(0.3)
        logs = "\n".join(f"--- {c.name}\n{c.output()[-3000:]}" for c in self.containers)
        raise AssertionError(f"{key}: {record} after {timeout}s\n{logs}")

    def plays(self, key):
        """(frames, complaint) of the published master of `key`."""
        folder = self.scratch / "played" / key.replace("/", "_") / str(time.time())
        download_prefix(self.s3, self.out, self.prefix(key), folder)
        return frames_played(folder / "master.m3u8")

    def source_exists(self, key):
        try:
            self.s3.head_object(Bucket=self.raw, Key=key)
            return True
        except self.s3.exceptions.ClientError:
            return False

    def queue_counts(self, url):
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return (int(attributes["ApproximateNumberOfMessages"]),
                int(attributes["ApproximateNumberOfMessagesNotVisible"]))

    def wait_drained(self, timeout=60):
        deadline = time.time() + timeout
        while self.queue_counts(self.queue) != (0, 0):
            if time.time() > deadline:
                raise AssertionError(f"the queue holds {self.queue_counts(self.queue)}")
            time.sleep(0.5)

    def status_events(self):
        """Every event the status queue holds now (each received once)."""
        events = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.status_queue, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=0).get("Messages", [])
            if not got:
                return events
            events += [json.loads(m["Body"]) for m in got]

    def denials(self):
        """What IAM refused anyone, from the programs' own logs and the ECS gate."""
        found = [f"ecs gate: {d}" for d in self.gate.denied]
        for container in self.containers + list(self.agent.containers.values() if self.agent else []):
            for line in container.output().splitlines():
                if "AccessDenied" in line or "not authorized" in line:
                    found.append(f"{container.name}: {line[:300]}")
        return found
