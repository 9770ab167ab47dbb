"""The ECS gate: IAM for the ECS calls moto does not check properly.

moto checks every ECS action against resource "*" and evaluates no Condition, so the consumer
role's RunTask statement (scoped to the job's task definition, on the stack's cluster) can never
match there, and moto never asks for the iam:PassRole that real ECS demands for the task's
roles. The consumer reaches ECS through this gate instead (`AWS_ENDPOINT_URL_ECS`, the SDK's
per-service endpoint). For each call it:
  1. finds the caller's role by the access key of its signature;
  2. evaluates that role's policies, as IAM holds them in moto, for the action on its real
     resource with its condition keys: for RunTask the task definition's ARN and `ecs:cluster`,
     then iam:PassRole on the task's execution and task roles with `iam:PassedToService`;
  3. answers AccessDeniedException as ECS does, or forwards the call to moto signed by the
     tests' admin (moto's own check is the one being replaced).
The evaluator covers what the template uses: Allow and Deny, wildcards in Action and Resource,
and the condition operators String(Equals|Like) and Arn(Equals|Like). An operator it does not
know fails closed.
"""

import fnmatch
import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from emulator import REGION


def _listed(value):
    return value if isinstance(value, list) else [value]


def _condition_holds(operator, expected, context):
    base = operator.removesuffix("IfExists")
    for key, wanted in expected.items():
        actual = context.get(key)
        if actual is None:
            if operator.endswith("IfExists"):
                continue
            return False
        wanted = _listed(wanted)
        if base in ("StringEquals", "ArnEquals"):
            ok = actual in wanted
        elif base in ("StringLike", "ArnLike"):
            ok = any(fnmatch.fnmatchcase(actual, w) for w in wanted)
        else:
            return False  # unknown operator: fail closed
        if not ok:
            return False
    return True


def allowed(policies, action, resource, context):
    """IAM's answer for one request: an explicit Deny wins, then any Allow, else denied."""
    verdict = False
    for policy in policies:
        for statement in _listed(policy["Statement"]):
            if not any(fnmatch.fnmatch(action.lower(), a.lower())
                       for a in _listed(statement.get("Action", []))):
                continue
            if not any(fnmatch.fnmatchcase(resource, r)
                       for r in _listed(statement.get("Resource", []))):
                continue
            conditions = statement.get("Condition", {})
            if not all(_condition_holds(op, expected, context)
                       for op, expected in conditions.items()):
                continue
            if statement["Effect"] == "Deny":
                return False
            verdict = True
    return verdict


class EcsGate:
    """The gate on a free loopback port in front of `emulator`'s ECS."""

    def __init__(self, emulator):
        self.emulator = emulator
        self.denied = []  # (role, action, resource) of every refusal, for the tests to read
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, headers, answer = gate.handle(
                    {k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()

    def handle(self, headers, body):
        target = headers.get("x-amz-target", "")
        action = "ecs:" + target.rsplit(".", 1)[-1]
        authorization = headers.get("authorization", "")
        key = authorization.split("Credential=", 1)[-1].split("/", 1)[0]
        role = self.emulator.role_of_key(key)
        if role is None:
            return self._deny("UnrecognizedClientException", "unknown access key")
        request = json.loads(body or b"{}")
        role_name = self.emulator.refs[role]
        policies = self.emulator.role_policies(role_name)
        for needed, resource, context in self._needs(action, request):
            if not allowed(policies, needed, resource, context):
                self.denied.append((role, needed, resource))
                return self._deny("AccessDeniedException",
                                  f"User: arn:aws:sts::assumed-role/{role_name} is not "
                                  f"authorized to perform: {needed} on resource: {resource}")
        return self._forward(headers, body)

    def _needs(self, action, request):
        """(action, resource, condition keys) that IAM checks for one ECS request."""
        if action in ("ecs:DescribeTasks", "ecs:StopTask"):
            # Each task by its ARN (task/CLUSTER/ID), with the cluster as its condition key.
            cluster = request.get("cluster", "default")
            ours = cluster in (self.emulator.refs["Cluster"], self.emulator.attrs["Cluster.Arn"])
            cluster_arn = self.emulator.attrs["Cluster.Arn"] if ours else "missing"
            tasks = request.get("tasks") or [request.get("task", "")]
            return [(action, self._task_arn(task, cluster), {"ecs:cluster": cluster_arn})
                    for task in tasks]
        if action != "ecs:RunTask":
            return [(action, "*", {})]
        ecs = self.emulator.client("ecs")
        definition = ecs.describe_task_definition(
            taskDefinition=request["taskDefinition"])["taskDefinition"]
        cluster = ecs.describe_clusters(clusters=[request.get("cluster", "default")])
        cluster_arn = cluster["clusters"][0]["clusterArn"] if cluster["clusters"] else "missing"
        needs = [(action, definition["taskDefinitionArn"], {"ecs:cluster": cluster_arn})]
        overrides = request.get("overrides", {})
        for field in ("executionRoleArn", "taskRoleArn"):
            role_arn = overrides.get(field) or definition.get(field)
            if role_arn:
                needs.append(("iam:PassRole", role_arn,
                              {"iam:PassedToService": "ecs-tasks.amazonaws.com"}))
        return needs

    def _task_arn(self, task, cluster):
        """A task's ARN in ECS's long format, from an ARN or a bare id."""
        if task.startswith("arn:"):
            return task
        account = self.emulator.attrs["Cluster.Arn"].split(":")[4]
        return f"arn:aws:ecs:{REGION}:{account}:task/{cluster.rsplit('/', 1)[-1]}/{task}"

    def _forward(self, headers, body):
        admin = self.emulator.admin
        request = AWSRequest(method="POST", url=self.emulator.endpoint + "/", data=body, headers={
            "Content-Type": headers.get("content-type", "application/x-amz-json-1.1"),
            "X-Amz-Target": headers["x-amz-target"],
        })
        SigV4Auth(Credentials(admin["AccessKeyId"], admin["SecretAccessKey"]), "ecs",
                  REGION).add_auth(request)
        prepared = urllib.request.Request(request.url, data=body, method="POST",
                                          headers=dict(request.headers.items()))
        try:
            with urllib.request.urlopen(prepared, timeout=30) as answer:
                return answer.status, {"Content-Type": answer.headers["Content-Type"]}, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, {"Content-Type": error.headers["Content-Type"]}, error.read()

    @staticmethod
    def _deny(kind, message):
        body = json.dumps({"__type": kind, "message": message}).encode()
        return 400, {"Content-Type": "application/x-amz-json-1.1"}, body
