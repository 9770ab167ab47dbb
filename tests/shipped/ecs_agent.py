"""A stand-in for the ECS agent (a test harness, named as one): moto records the tasks RunTask
starts but runs no container, so this watches the cluster and starts each new task's container
as ECS would: the task definition's command and environment under the container overrides of
the RunTask call, its initProcessEnabled, and the credentials of the task definition's task
role, all read back from moto rather than from the caller. When a container exits, the task is
stopped with the exit code in its reason, as ECS reports an essential container's end. At most
`runners` containers run at once; the other tasks wait, as tasks wait for capacity."""

import json
import threading
import time
import urllib.request

from containers import Container


class EcsAgent:
    def __init__(self, emulator, scratch, cluster, dockerfile="transcoder.Dockerfile", runners=None):
        self.emulator, self.scratch, self.cluster = emulator, scratch, cluster
        self.dockerfile = dockerfile
        self.runners = runners
        self.containers = {}  # task ARN -> Container, in the order they started
        self.started_at, self.ended_at = {}, {}  # task ARN -> time.time()
        self.tasks = {}  # task ARN -> the task as DescribeTasks gave it
        self._waiting = []  # tasks seen, not started yet
        self._seen = set()
        self._stop = threading.Event()
        self.errors = []
        # Tasks run until StopTask, as ECS's run until their container exits (moto otherwise
        # walks a task to STOPPED after four DescribeTasks).
        request = urllib.request.Request(
            emulator.endpoint + "/moto-api/state-manager/set-transition", method="POST",
            data=json.dumps({"model_name": "ecs::task",
                             "transition": {"progression": "manual", "times": 10**9}}).encode(),
            headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)
        for container in self.containers.values():
            container.stop(grace=5)

    def running(self):
        return [arn for arn in self.containers if arn not in self.ended_at]

    def _watch(self):
        ecs = self.emulator.client("ecs")
        while not self._stop.is_set():
            try:
                self._reap(ecs)
                arns = ecs.list_tasks(cluster=self.cluster)["taskArns"]
                new = [arn for arn in arns if arn not in self._seen]
                if new:
                    for task in ecs.describe_tasks(cluster=self.cluster, tasks=new)["tasks"]:
                        self._seen.add(task["taskArn"])
                        self.tasks[task["taskArn"]] = task
                        self._waiting.append(task)
                while self._waiting and (self.runners is None or len(self.running()) < self.runners):
                    task = self._waiting.pop(0)
                    self.started_at[task["taskArn"]] = time.time()
                    self.containers[task["taskArn"]] = self._start(ecs, task)
            except Exception as error:  # noqa: BLE001 - kept for the test to report
                self.errors.append(repr(error))
            self._stop.wait(0.3)

    def _reap(self, ecs):
        for arn in self.running():
            code = self.containers[arn].process.poll()
            if code is None:
                continue
            self.ended_at[arn] = time.time()
            ecs.stop_task(cluster=self.cluster, task=arn,
                          reason=f"Essential container in task exited (exit code {code})")

    def _start(self, ecs, task):
        definition = ecs.describe_task_definition(
            taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
        overrides = {o["name"]: o for o in task.get("overrides", {}).get("containerOverrides", [])}
        (container,) = definition["containerDefinitions"]
        override = overrides.get(container["name"], {})
        env = {e["name"]: e["value"] for e in container.get("environment", [])}
        env.update({e["name"]: e["value"] for e in override.get("environment", [])})
        role_arn = task.get("overrides", {}).get("taskRoleArn") or definition["taskRoleArn"]
        role = next(logical for logical, _ in self.emulator.roles.items()
                    if self.emulator.attrs[f"{logical}.Arn"] == role_arn)
        env.update(self.emulator.role_env(role))
        name = "task-" + task["taskArn"].rsplit("/", 1)[-1][:8]
        return Container(
            name, self.dockerfile, self.scratch,
            command=override.get("command") or container.get("command"),
            entrypoint=container.get("entryPoint") or None,
            environment=env,
            runtime_init=container.get("linuxParameters", {}).get("initProcessEnabled", False),
        )

    def wait_for_tasks(self, count, timeout=60):
        deadline = time.time() + timeout
        while len(self.containers) < count:
            if time.time() > deadline:
                raise AssertionError(f"{len(self.containers)} tasks started, not {count}: {self.errors}")
            time.sleep(0.2)
        return list(self.containers.values())
