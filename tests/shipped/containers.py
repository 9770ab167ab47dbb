"""Running a binary the way its image runs it, with no container engine.

A "container" here is a fresh PID and mount namespace (`unshare --pid --fork --mount-proc`)
in which, as the image declares it (docker/tests/dockerfile.py reads the runtime stage):
  - the binary sits in /usr/local/bin (a bind mount of a folder holding only our binaries, as
    the image's COPY puts it there), ffmpeg, ffprobe and tini come from /usr/bin as in the
    image (the same Debian packages);
  - the process runs as the image's USER, in its WORKDIR, with the image's ENV under the
    service's environment, and nothing else of ours (Docker's PATH and HOME);
  - the command line is [runtime init] + ENTRYPOINT + (service command or CMD): the runtime
    init is what compose's `init: true` and ECS's `initProcessEnabled` add (Docker's init is
    tini, run as PID 1), so with it the image's tini runs below it; without it the image's
    ENTRYPOINT is PID 1;
  - /etc/hosts answers the names the environment uses (service discovery) with the loopback
    addresses the tests picked, and /work is a scratch folder owned by the image's user.
The one change to what the files say: warm transcoders share this machine's network, where
each container has its own, so each listens on the loopback address that its name resolves to
(TRANSCODER_LISTEN and the health check's 127.0.0.1 become that address); the port stays.
"""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docker" / "tests"))
from dockerfile import runtime  # noqa: E402

DOCKER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TARGET_DIR = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
BINARIES = TARGET_DIR / os.environ.get("SHIPPED_PROFILE", "debug")


def require_root():
    """unshare, mount and setpriv need root, as the README's test command runs."""
    if os.geteuid() != 0:
        raise RuntimeError("tests/shipped runs the binaries in namespaces of their own: run it as root")


def image_bin(scratch):
    """A folder holding only the workspace's two binaries, readable by any user: what the
    images' /usr/local/bin holds."""
    folder = Path(scratch) / "usr-local-bin"
    if folder.exists():
        return folder  # made once per scratch folder: a running binary cannot be overwritten
    folder.mkdir()
    for name in ("transcoder", "consumer"):
        source = BINARIES / name
        if not source.exists():
            raise RuntimeError(f"{source} is missing: build the workspace first (scripts/test.sh does)")
        shutil.copy2(source, folder / name)
        (folder / name).chmod(0o755)
    folder.chmod(0o755)
    return folder


def task_environment(container):
    """A task definition container's Environment as a dict (already resolved)."""
    return {item["Name"]: str(item["Value"]) for item in container.get("Environment", [])}


class Container:
    """One process tree started as its image runs it; stopped as `docker stop` does."""

    def __init__(self, name, dockerfile, scratch, *, command=None, environment=None,
                 runtime_init=False, hosts=(), listen=None, files=(), entrypoint=None):
        require_root()
        self.name = name
        self.image = runtime(dockerfile)
        if entrypoint is not None:  # a test of what runs without the image's own init
            self.image["entrypoint"] = entrypoint
        self.scratch = Path(scratch) / name
        self.scratch.mkdir(parents=True, exist_ok=True)
        uid, _, gid = self.image["user"].partition(":")
        self.uid, self.gid = int(uid), int(gid or uid)
        self.work = self.scratch / "work"
        self.work.mkdir(exist_ok=True)
        for source, target in files:  # inputs the container finds in its WORKDIR
            shutil.copy2(source, self.work / target)
        for path in [self.work, *self.work.rglob("*")]:
            os.chown(path, self.uid, self.gid)
        hosts_file = self.scratch / "hosts"
        hosts_file.write_text("127.0.0.1 localhost\n::1 localhost\n"
                              + "".join(f"{address} {host}\n" for host, address in hosts))
        self.listen = listen
        env = {"PATH": DOCKER_PATH, "HOME": "/", "HOSTNAME": name}
        env.update(self.image["env"])
        env.update(environment or {})
        if listen and "TRANSCODER_LISTEN" in env:
            env["TRANSCODER_LISTEN"] = f"{listen}:{env['TRANSCODER_LISTEN'].rsplit(':', 1)[1]}"
        self.env = env
        argv = (["/usr/bin/tini", "--"] if runtime_init else []) + self.image["entrypoint"] \
            + (command if command is not None else self.image["cmd"])
        self.argv = argv
        bin_dir = image_bin(Path(scratch))
        mounts = [f"mount --bind {bin_dir} /usr/local/bin",
                  f"mount --bind {hosts_file} /etc/hosts"]
        if Path(self.image["workdir"]) != Path("/"):
            mounts.append(f"mkdir -p {self.image['workdir']} && mount --bind {self.work} {self.image['workdir']}")
        script = " && ".join(mounts) + f" && cd {self.image['workdir']} && exec setpriv " \
            f"--reuid={self.uid} --regid={self.gid} --clear-groups -- " + shlex.join(argv)
        self.log_path = self.scratch / "output.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", "/bin/sh", "-c", script],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )

    # --- what runs ------------------------------------------------------------------------
    def pid1(self, timeout=10):
        """The host pid of the container's PID 1 (unshare's only child)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
            except FileNotFoundError:
                children = []
            if children:
                return int(children[0])
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at once:\n{self.output()}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} has no PID 1")

    def tree(self):
        """(pid in namespace, command name, uid) of every process of the container."""
        found = []
        root = self.pid1()
        try:
            first = Path(f"/proc/{root}/comm").read_text().strip()
        except OSError:
            return []
        if first in ("sh", "setpriv", "unshare"):
            return []  # still the set-up before the image's command: nothing of the image yet
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            nspids = fields.get("NSpid", "").split()
            if str(root) == entry.name or (len(nspids) > 1 and self._in_tree(int(entry.name), root)):
                found.append((int(nspids[-1]), fields["Name"].strip(), int(fields["Uid"].split()[0])))
        return sorted(found)

    @staticmethod
    def _in_tree(pid, root):
        while pid > 1:
            if pid == root:
                return True
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                return False
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        return False

    def output(self):
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log(self):
        """The JSON log lines the container wrote (other lines left out)."""
        lines = []
        for line in self.output().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines

    def wait(self, timeout):
        try:
            status = self.process.wait(timeout=timeout)
            self._log.close()
            return status
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still runs after {timeout}s:\n{self.output()[-4000:]}")

    def stop(self, grace=10):
        """`docker stop`: SIGTERM to PID 1, SIGKILL after `grace` seconds."""
        if self.process.poll() is None:
            try:
                os.kill(self.pid1(timeout=1), signal.SIGTERM)
            except (RuntimeError, ProcessLookupError):
                pass
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()
        if not self._log.closed:
            self._log.close()
        return self.process.returncode

    def kill(self):
        # Killing the namespace's PID 1 kills every process in it.
        try:
            os.kill(self.pid1(timeout=1), signal.SIGKILL)
        except (RuntimeError, ProcessLookupError):
            pass
        self.process.kill()
        self.process.wait()

    def healthy(self):
        """The image's HEALTHCHECK, asked of this container's address."""
        check = list(self.image["healthcheck"])
        if self.listen:
            check = [arg.replace("127.0.0.1", self.listen) for arg in check]
        binary = image_bin(self.scratch.parent) / check[0]
        run = subprocess.run([str(binary), *check[1:]], capture_output=True, timeout=10,
                             env={"PATH": DOCKER_PATH})
        return run.returncode == 0

    def wait_healthy(self, timeout=30):
        deadline = time.time() + timeout
        while not self.healthy():
            if self.process.poll() is not None or time.time() > deadline:
                raise AssertionError(f"{self.name} never became healthy:\n{self.output()[-4000:]}")
            time.sleep(0.3)
