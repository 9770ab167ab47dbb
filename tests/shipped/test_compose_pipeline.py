"""`docker compose --profile moto up` without Docker: the services as Docker Compose v2 itself
resolves them from docker/compose.yml and .env.example (`config --format json`), the
transcoders and the consumer run as their images run them (containers.py), the names `aws`
and `transcoder` answered as compose's network answers them. moto and the init step are the
developer's tooling, not the product: they run on the host with the command and environment
compose gives them (moto bound to its own loopback address rather than 0.0.0.0).

    python -m unittest discover -s tests/shipped -p test_compose_pipeline.py
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import boto3

from containers import Container
from emulator import ROOT, free_loopback_block, start_moto
from media import download_prefix, frames_played, make_clip

COMPOSE_BIN = os.environ.get(
    "COMPOSE_BIN", str(Path.home() / ".cache/vod-pipeline/tools-venv/lib/compose-bin/docker-compose"))


def compose_config(profile):
    run = subprocess.run(
        [COMPOSE_BIN, "--env-file", str(ROOT / ".env.example"), "-f", str(ROOT / "docker/compose.yml"),
         "--profile", profile, "config", "--format", "json"],
        capture_output=True, text=True, check=True, cwd=ROOT, env={"PATH": os.environ["PATH"]})
    return json.loads(run.stdout)["services"]


def seconds(duration):
    """Compose's normalized duration ("2m0s", "1m15s") in seconds."""
    minutes, _, rest = duration.partition("m") if "m" in duration else ("0", "", duration)
    return int(minutes) * 60 + int(rest.rstrip("s") or 0)


class ComposeMotoProfile(unittest.TestCase):
    def setUp(self):
        self.services = compose_config("moto")
        folder = tempfile.TemporaryDirectory(prefix="shipped-compose-")
        self.addCleanup(folder.cleanup)
        self.scratch = Path(folder.name)
        self.block = free_loopback_block()
        self.containers = []
        self.addCleanup(lambda: [c.stop(grace=5) for c in self.containers])
        self._start_moto()
        self._run_init()

    def _start_moto(self):
        moto = self.services["moto"]
        self.assertEqual(moto["ports"][0]["target"], 4566)
        log = open(self.scratch / "moto.log", "w")
        self.addCleanup(log.close)
        process = start_moto(f"{self.block}.1", log, moto["environment"])
        self.addCleanup(lambda: (process.kill(), process.wait()))
        self.endpoint = f"http://{self.block}.1:4566"

    def host_env(self, service):
        """A service's environment for a process on the host: `aws` is moto's address."""
        env = dict(self.services[service]["environment"])
        env["AWS_ENDPOINT_URL"] = env["AWS_ENDPOINT_URL"].replace("//aws:", f"//{self.block}.1:")
        return env

    def _run_init(self):
        init = self.services["init"]
        self.assertEqual(init["command"], ["python", "/opt/vod/local_stack.py", "setup"])
        # The emulator image copies scripts/lib/local_stack.py to /opt/vod (its Dockerfile).
        run = subprocess.run([sys.executable, str(ROOT / "scripts/lib/local_stack.py"), "setup"],
                             env={**os.environ, **self.host_env("init")},
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 0, run.stderr)

    def start(self, service, name, listen=None):
        spec = self.services[service]
        hosts = [("aws", f"{self.block}.1"), ("transcoder", f"{self.block}.2"),
                 ("transcoder", f"{self.block}.3")]
        container = Container(name, Path(spec["build"]["dockerfile"]).name, self.scratch,
                              command=spec.get("command"), environment=spec["environment"],
                              runtime_init=spec.get("init", False), hosts=hosts, listen=listen)
        container.grace = seconds(spec.get("stop_grace_period", "10s"))
        self.containers.append(container)
        return container

    def s3(self):
        env = self.host_env("init")
        return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"],
                            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])

    def wait_done(self, s3, prefix, timeout=180):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                record = json.loads(s3.get_object(Bucket="vod-output", Key=prefix + "manifest.json")["Body"].read())
                if record["status"] in ("done", "failed"):
                    return record
            except s3.exceptions.NoSuchKey:
                pass
            time.sleep(0.3)
        logs = "\n".join(f"--- {c.name}\n{c.output()[-3000:]}" for c in self.containers)
        self.fail(f"no record under {prefix}\n{logs}")

    def test_an_upload_is_published_and_a_stop_waits_for_the_drain(self):
        replicas = self.services["transcoder"]["deploy"]["replicas"]
        transcoders = [self.start("transcoder", f"transcoder-{i}", listen=f"{self.block}.{2 + i}")
                       for i in range(replicas)]
        for transcoder in transcoders:
            transcoder.wait_healthy()
        self.start("consumer", "consumer")
        s3 = self.s3()
        clip = make_clip(self.scratch / "clip.mp4", seconds=12, size="1280x720")
        s3.upload_file(str(clip), "vod-raw", "uploads/clip.mp4")

        # `docker compose stop` mid-job: SIGTERM, then the service's stop_grace_period. The
        # transcoder drains (TRANSCODER_DRAIN_SECONDS, 100 s by default) and the grace period
        # lets it: the job is finished by the transcoder that had it, which then exits 0.
        deadline = time.time() + 60
        busy = None
        while busy is None and time.time() < deadline:
            busy = next((t for t in transcoders
                         if any(name == "ffmpeg" for _, name, _ in t.tree())), None)
            time.sleep(0.2)
        self.assertIsNotNone(busy, "no transcoder started ffmpeg")
        self.assertEqual(busy.stop(grace=busy.grace), 0, busy.output()[-3000:])
        record = self.wait_done(s3, "hls/uploads/clip/")
        self.assertEqual(record["status"], "done", record)
        cancelled = [line for line in busy.log() if line["fields"].get("message") == "job cancelled"]
        self.assertEqual(cancelled, [], "the drain was cut short")
        folder = download_prefix(s3, "vod-output", "hls/uploads/clip/", self.scratch / "played")
        self.assertEqual(frames_played(folder / "master.m3u8"), (360, ""))


if __name__ == "__main__":
    unittest.main()
