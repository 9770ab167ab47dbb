"""deploy/: running the stack unattended (issue 19), checked in the templates and scripts. One
test class per part: scaling, alarms and the dashboard, safe deploys, images, keeping tasks
apart, naming, parameters, image size. What moto can also show (the resources it builds, the
second deploy, the teardown) is in test_deploy.py.

    python -m unittest discover -s deploy/tests
"""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from template import load_template, resolve, rules_accept, statements  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STACK = load_template(ROOT / "deploy" / "stack.yaml")
IMAGES = load_template(ROOT / "deploy" / "images.yaml")
RESOURCES = STACK["Resources"]
DEFAULTS = {"UseAuthToken": True, "UseTls": False, "CreateNetwork": True, "PublicIp": True,
            "UseCloudFront": True, "EmailAlarms": False}


def props(name, **conditions):
    """A resource's properties with its conditions resolved (the defaults, unless given)."""
    return resolve(RESOURCES[name]["Properties"], {**DEFAULTS, **conditions})


def container(task_definition, **conditions):
    (only,) = props(task_definition, **conditions)["ContainerDefinitions"]
    return only


def env(task_definition, **conditions):
    return {e["Name"]: e["Value"] for e in container(task_definition, **conditions)["Environment"]}


def secrets(task_definition, **conditions):
    return {s["Name"]: s["ValueFrom"]
            for s in container(task_definition, **conditions).get("Secrets", [])}


def of_type(kind):
    return {k: v for k, v in RESOURCES.items() if v["Type"] == kind}


def backlog_per_task(expression, visible, inflight, tasks):
    """The alarms' metric math, evaluated in Python for one data point: FILL(x, 0) of a present
    value is the value, IF(c, a, b) is `a if c else b`."""
    python = re.sub(r"FILL\((\w+), 0\)", r"\1", expression)
    python = re.sub(r"IF\((.+?) > 0, (.+?), ([0-9.]+)\)", r"(\2 if \1 > 0 else \3)", python)
    return eval(python, {}, {"visible": visible, "inflight": inflight, "tasks": tasks})  # noqa: S307


class Scaling(unittest.TestCase):
    """The warm pool follows the backlog per task, down to a minimum that may be 0, with an
    on-demand base and Spot on top."""

    def test_the_pool_scales_on_the_backlog_per_task_down_to_a_minimum_that_may_be_0(self):
        target = props("WarmScalableTarget")
        self.assertEqual(target["ScalableDimension"], "ecs:service:DesiredCount")
        self.assertIn("TranscoderService.Name", json.dumps(target["ResourceId"]))
        self.assertEqual(target["MinCapacity"], {"Ref": "WarmMinimum"})
        self.assertEqual(target["MaxCapacity"], {"Ref": "WarmMaximum"})
        self.assertEqual(STACK["Parameters"]["WarmMinimum"]["MinValue"], 0)
        self.assertEqual(props("TranscoderService")["DesiredCount"], {"Ref": "WarmMinimum"})

        out, in_ = props("WarmScaleOut"), props("WarmScaleIn")
        self.assertEqual({out["PolicyType"], in_["PolicyType"]}, {"StepScaling"})
        self.assertTrue(all(s["ScalingAdjustment"] > 0
                            for s in out["StepScalingPolicyConfiguration"]["StepAdjustments"]))
        self.assertTrue(all(s["ScalingAdjustment"] < 0
                            for s in in_["StepScalingPolicyConfiguration"]["StepAdjustments"]))
        high, low = props("BacklogHighAlarm"), props("BacklogLowAlarm")
        self.assertEqual(high["AlarmActions"], [{"Ref": "WarmScaleOut"}])
        self.assertEqual(low["AlarmActions"], [{"Ref": "WarmScaleIn"}])
        self.assertEqual(high["Metrics"], low["Metrics"], "both alarms read one figure")
        by_id = {m["Id"]: m for m in high["Metrics"]}
        self.assertEqual(by_id["visible"]["MetricStat"]["Metric"]["MetricName"], "ApproximateNumberOfMessagesVisible")
        self.assertEqual(by_id["inflight"]["MetricStat"]["Metric"]["MetricName"], "ApproximateNumberOfMessagesNotVisible")
        self.assertEqual(by_id["tasks"]["MetricStat"]["Metric"]["MetricName"], "RunningTaskCount")
        self.assertIn("TranscoderService", json.dumps(by_id["tasks"]["MetricStat"]["Metric"]["Dimensions"]))
        self.assertEqual([m["Id"] for m in high["Metrics"] if m["ReturnData"]], ["perTask"])

        expression = by_id["perTask"]["Expression"]
        per_task = lambda *point: backlog_per_task(expression, *point)  # noqa: E731
        out_above, in_below = high["Threshold"], low["Threshold"]
        self.assertEqual((high["ComparisonOperator"], low["ComparisonOperator"]),
                         ("GreaterThanThreshold", "LessThanThreshold"))
        self.assertGreater(per_task(1, 0, 0), out_above, "one upload, no warm task: scale out from 0")
        self.assertGreater(per_task(0, 3, 1), out_above, "3 jobs running, 1 warm task: grow")
        self.assertEqual(per_task(0, 1, 1), 1.0)
        self.assertFalse(per_task(0, 1, 1) > out_above or per_task(0, 1, 1) < in_below, "1 job per task: stay")
        self.assertFalse(per_task(1, 0, 2) < in_below, "half a job per task: stay (no flapping)")
        self.assertLess(per_task(0, 0, 2), in_below, "idle: shrink")
        self.assertEqual(per_task(0, 0, 0), 0, "idle and empty: nothing to do")
        # Container Insights publishes RunningTaskCount.
        self.assertIn({"Name": "containerInsights", "Value": "enabled"}, props("Cluster")["ClusterSettings"])

    def test_an_on_demand_base_and_spot_on_top(self):
        strategy = props("TranscoderService")["CapacityProviderStrategy"]
        self.assertEqual(strategy, [
            {"CapacityProvider": "FARGATE", "Base": {"Ref": "WarmOnDemandBase"}, "Weight": 0},
            {"CapacityProvider": "FARGATE_SPOT", "Weight": 1},
        ])
        self.assertGreaterEqual(STACK["Parameters"]["WarmOnDemandBase"]["Default"], 1)


# The two lines that end every job attempt, as `transcoder run` printed them with
# LOG_FORMAT=json and RUST_LOG=info against moto (tracing-subscriber's JSON layout: the event's
# fields under "fields").
JOB_DONE = '{"timestamp":"2026-12-02T11:25:46.202480Z","level":"INFO","fields":{"message":"job done","already_done":false},"target":"transcoder::job::queued"}'
JOB_FAILED = '{"timestamp":"2026-12-02T11:25:24.772100Z","level":"WARN","fields":{"message":"job failed","kind":"{kind}","error":"the source s3://srcb/up/missing.mp4 does not exist"},"target":"transcoder::job::queued"}'


def matches(pattern, line):
    """CloudWatch Logs' JSON filter pattern `{ $.a.b = "x" && ... }` (only what the template
    uses: string equality joined by &&) against one log line."""
    event = json.loads(line)
    for term in pattern.strip().strip("{}").split("&&"):
        path, value = (p.strip() for p in term.split("="))
        found = event
        for key in path.removeprefix("$.").split("."):
            found = found.get(key) if isinstance(found, dict) else None
        if found != json.loads(value):
            return False
    return True


class Alarms(unittest.TestCase):
    """Dead letters, the oldest upload, the consumer's task count and the job failure rate,
    to a topic in the outputs; a dashboard with the same figures."""

    def test_each_alarm_watches_its_figure_and_tells_the_topic_in_the_outputs(self):
        expected = {
            "DeadLetterAlarm": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "UploadDeadLetterQueue"),
            "OldestUploadAlarm": ("AWS/SQS", "ApproximateAgeOfOldestMessage", "UploadQueue"),
            "ConsumerDownAlarm": ("ECS/ContainerInsights", "RunningTaskCount", "ConsumerService"),
        }
        for name, (namespace, metric, subject) in expected.items():
            alarm = props(name)
            self.assertEqual((alarm["Namespace"], alarm["MetricName"]), (namespace, metric), name)
            self.assertIn(subject, json.dumps(alarm["Dimensions"]), name)
        self.assertEqual(props("ConsumerDownAlarm")["TreatMissingData"], "breaching",
                         "no consumer reporting is no consumer")
        self.assertEqual(props("OldestUploadAlarm")["Threshold"], {"Ref": "OldestMessageAlarmSeconds"})
        for name in (*expected, "JobFailureRateAlarm"):
            alarm = props(name)
            self.assertEqual(alarm["AlarmActions"], [{"Ref": "AlarmTopic"}], name)
            self.assertEqual(alarm["OKActions"], [{"Ref": "AlarmTopic"}], name)
        self.assertEqual(STACK["Outputs"]["AlarmTopicArn"]["Value"], {"Ref": "AlarmTopic"})
        self.assertEqual(RESOURCES["AlarmEmailSubscription"]["Condition"], "EmailAlarms")

    def test_the_failure_rate_counts_the_lines_the_transcoder_really_logs(self):
        # The lines above are what the code still logs: same messages, same field for the kind.
        queued = (ROOT / "transcoder/src/job/queued.rs").read_text()
        self.assertIn('tracing::info!(already_done = done.already_done, "job done")', queued)
        self.assertIn('tracing::warn!(kind = ?e.kind(), error = %e, "job failed")', queued)
        # `kind = ?e.kind()` logs ErrorKind's derived Debug: the variant names, as is.
        kinds = (ROOT / "common/src/manifest.rs").read_text()
        self.assertRegex(kinds, r"#\[derive\(Debug[^\]]*\]\s*(#\[serde[^\]]*\]\s*)?pub enum ErrorKind \{"
                                r"[^}]*InvalidInput,[^}]*Internal,")
        self.assertIn("builder.json()", (ROOT / "common/src/telemetry.rs").read_text())

        patterns = {props(n)["MetricTransformations"][0]["MetricName"]: props(n)["FilterPattern"]
                    for n in of_type("AWS::Logs::MetricFilter")}
        self.assertEqual(set(patterns), {"JobsDone", "JobsFailed", "JobsInvalid"})
        lines = {"done": JOB_DONE, "internal": JOB_FAILED.replace("{kind}", "Internal"),
                 "invalid": JOB_FAILED.replace("{kind}", "InvalidInput")}
        counted = {metric: [k for k, line in lines.items() if matches(p, line)] for metric, p in patterns.items()}
        self.assertEqual(counted, {"JobsDone": ["done"], "JobsFailed": ["internal"], "JobsInvalid": ["invalid"]})
        for name in of_type("AWS::Logs::MetricFilter"):
            self.assertEqual(props(name)["LogGroupName"], {"Ref": "TranscoderLogs"})
        # "job done" is info, and the binary's default level is warn: both task definitions
        # must turn info on for the transcoder, or the rate would read 100% on any failure.
        for task in ("TranscoderTaskDefinition", "TranscoderJobTaskDefinition"):
            self.assertEqual(env(task)["LOG_FORMAT"], "json", task)
            self.assertIn("transcoder=info", env(task)["RUST_LOG"], task)
        self.assertIn('init(cli.log_format, "warn")', (ROOT / "transcoder/src/main.rs").read_text())

        rate = props("JobFailureRateAlarm")
        (expression,) = [m["Expression"] for m in rate["Metrics"] if m["ReturnData"]]
        by_id = {m["Id"]: m["MetricStat"]["Metric"]["MetricName"] for m in rate["Metrics"] if "MetricStat" in m}
        self.assertEqual(by_id, {"done": "JobsDone", "failed": "JobsFailed"})
        python = re.sub(r"FILL\((\w+), 0\)", r"\1", expression)
        python = re.sub(r"IF\((.+) > 0, (.+), 1\)", r"(\2 if \1 > 0 else 1)", python)
        rate_of = lambda done, failed: eval(python, {}, {"done": done, "failed": failed})  # noqa: E731,S307
        self.assertEqual(rate_of(0, 0), 0)
        self.assertEqual(rate_of(3, 1), 25)
        self.assertEqual(rate_of(0, 2), 100, "every job failing is the loudest case")

    def test_the_dashboard_shows_every_alarm_and_the_backlog(self):
        body, variables = props("Dashboard")["DashboardBody"]["Fn::Sub"]
        values = {"AWS::Region": "us-east-1", "AWS::Partition": "aws", "AWS::AccountId": "123456789012",
                  "Name": "vod", "Cluster": "vod", "FailureRateAlarmPercent": "20",
                  "OldestMessageAlarmSeconds": "3600", **{k: "x" for k in variables}}
        values["AlarmArn"] = "arn:aws:cloudwatch:us-east-1:123456789012:alarm"
        dashboard = json.loads(re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], body))
        shown = json.dumps(dashboard)
        for name, alarm in of_type("AWS::CloudWatch::Alarm").items():
            alarm_name = alarm["Properties"]["AlarmName"]["Fn::Sub"].replace("${Name}", "vod")
            if name != "BacklogLowAlarm":  # the same figure as BacklogHighAlarm's graph
                self.assertIn(f"alarm:{alarm_name}", shown, name)
        self.assertEqual(variables["AlarmArn"]["Fn::Sub"],
                         "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm")
        for figure in ("ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible",
                       "RunningTaskCount", "JobsDone", "JobsFailed", "JobsInvalid"):
            self.assertIn(figure, shown)
        self.assertIn("DashboardUrl", STACK["Outputs"])


class SafeDeploys(unittest.TestCase):
    """A circuit breaker with rollback; tags that name one build; images for the tasks' CPU."""

    def test_both_services_roll_back_a_deployment_that_keeps_failing(self):
        for service in ("TranscoderService", "ConsumerService"):
            config = props(service)["DeploymentConfiguration"]
            self.assertEqual(config["DeploymentCircuitBreaker"], {"Enable": True, "Rollback": True}, service)

    def run_tag(self, repo, **extra):
        environment = {k: v for k, v in os.environ.items() if k not in ("IMAGE_TAG", "CPU_ARCHITECTURE")}
        return subprocess.run([str(repo / "deploy" / "deploy.sh"), "--print-image-tag"],
                              env={**environment, **extra}, capture_output=True, text=True, timeout=60)

    def test_tags_are_the_commit_dirty_when_the_tree_differs_never_latest_and_immutable(self):
        for repository in of_type_in(IMAGES, "AWS::ECR::Repository").values():
            self.assertEqual(repository["Properties"]["ImageTagMutability"], "IMMUTABLE")
        with tempfile.TemporaryDirectory() as tmp:
            repo = Path(tmp)
            (repo / "deploy").mkdir()
            shutil.copy(ROOT / "deploy" / "deploy.sh", repo / "deploy" / "deploy.sh")
            git = lambda *a: subprocess.run(["git", "-C", tmp, *a], check=True, capture_output=True)  # noqa: E731
            git("init", "-q")
            git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x")
            git("add", "deploy")
            git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "deploy")
            commit = subprocess.run(["git", "-C", tmp, "rev-parse", "--short=12", "HEAD"],
                                    capture_output=True, text=True, check=True).stdout.strip()
            self.assertEqual(self.run_tag(repo).stdout.strip(), commit)
            self.assertEqual(self.run_tag(repo, CPU_ARCHITECTURE="ARM64").stdout.strip(), commit + "-arm64")
            (repo / "new-file").write_text("changed")
            dirty = self.run_tag(repo).stdout.strip()
            self.assertRegex(dirty, rf"^{commit}-dirty-\d{{8}}T\d{{6}}Z$")
            refused = self.run_tag(repo, IMAGE_TAG="latest")
            self.assertNotEqual(refused.returncode, 0)
            self.assertIn("latest", refused.stderr)
            self.assertEqual(self.run_tag(repo, IMAGE_TAG="v1.2").stdout.strip(), "v1.2")
            shutil.rmtree(repo / ".git")
            self.assertNotEqual(self.run_tag(repo).returncode, 0, "no commit, no tag: never `latest`")

    def test_the_cpu_architecture_is_a_parameter_and_the_images_are_built_for_it(self):
        self.assertEqual(STACK["Parameters"]["CpuArchitecture"]["AllowedValues"], ["X86_64", "ARM64"])
        self.assertEqual(STACK["Parameters"]["CpuArchitecture"]["Default"], "X86_64")
        for task in of_type("AWS::ECS::TaskDefinition"):
            self.assertEqual(props(task)["RuntimePlatform"],
                             {"CpuArchitecture": {"Ref": "CpuArchitecture"}, "OperatingSystemFamily": "LINUX"}, task)
        script = (ROOT / "deploy" / "deploy.sh").read_text()
        self.assertIn("X86_64) platform=linux/amd64", script)
        self.assertIn("ARM64) platform=linux/arm64", script)
        self.assertIn('"CpuArchitecture=$architecture"', script)
        builds = re.findall(r"docker build .*", script)
        self.assertTrue(builds)
        for build in builds:
            self.assertIn('--platform "$platform"', build)


def of_type_in(template, kind):
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


class Apart(unittest.TestCase):
    """A security group per role, the gRPC token from Secrets Manager, TLS as an option,
    buckets that refuse plain HTTP."""

    def rules(self, kind, key):
        """(group, other group, port) of every rule resource of `kind`."""
        found = set()
        for rule in of_type(kind).values():
            p = rule["Properties"]
            found.add((p["GroupId"]["Fn::GetAtt"][0], p[key]["Fn::GetAtt"][0], p["FromPort"], p["ToPort"]))
        return found

    def test_one_security_group_per_role_and_one_shot_tasks_reach_nothing_of_ours(self):
        groups = of_type("AWS::EC2::SecurityGroup")
        self.assertEqual(set(groups), {"WarmTranscoderSecurityGroup", "ConsumerSecurityGroup", "JobSecurityGroup"})
        for name in groups:
            p = props(name)
            self.assertNotIn("SecurityGroupIngress", p, name)
            self.assertEqual([(r["FromPort"], r["ToPort"]) for r in p["SecurityGroupEgress"]], [(443, 443)], name)
        warm, consumer = "WarmTranscoderSecurityGroup", "ConsumerSecurityGroup"
        self.assertEqual(self.rules("AWS::EC2::SecurityGroupIngress", "SourceSecurityGroupId"),
                         {(warm, consumer, 50051, 50051), (warm, warm, 50051, 50051)})
        self.assertEqual(self.rules("AWS::EC2::SecurityGroupEgress", "DestinationSecurityGroupId"),
                         {(consumer, warm, 50051, 50051), (warm, warm, 50051, 50051)})
        sg = lambda service: props(service)["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]  # noqa: E731
        self.assertEqual(sg("TranscoderService"), [{"Fn::GetAtt": [warm, "GroupId"]}])
        self.assertEqual(sg("ConsumerService"), [{"Fn::GetAtt": [consumer, "GroupId"]}])
        self.assertEqual(env("ConsumerTaskDefinition")["ECS_SECURITY_GROUPS"],
                         {"Fn::GetAtt": ["JobSecurityGroup", "GroupId"]})

    def test_the_grpc_token_comes_from_secrets_manager_and_is_on_by_default(self):
        self.assertEqual(STACK["Parameters"]["GrpcAuth"]["Default"], "token")
        generated = props("AuthTokenSecret")["GenerateSecretString"]
        self.assertTrue(generated["ExcludePunctuation"], "the token travels in an HTTP header")
        self.assertGreaterEqual(generated["PasswordLength"], 32)
        token = {"Ref": "AuthTokenSecret"}
        for task in ("TranscoderTaskDefinition", "ConsumerTaskDefinition"):
            self.assertEqual(secrets(task), {"TRANSCODER_AUTH_TOKEN": token}, task)
            self.assertNotIn("TRANSCODER_AUTH_TOKEN", env(task), task)
            self.assertEqual(secrets(task, UseAuthToken=False), {}, task)
        self.assertEqual(secrets("TranscoderJobTaskDefinition"), {}, "the hostile-input task holds no secret")
        # The variable both binaries read.
        for source in ("transcoder/src/cli/serve.rs", "consumer/src/config.rs"):
            self.assertIn('env = "TRANSCODER_AUTH_TOKEN"', (ROOT / source).read_text(), source)
        # The execution role reads that secret and nothing else.
        reads = [s for p in props("ExecutionRole")["Policies"] for s in statements(p["PolicyDocument"])
                 if "secretsmanager:GetSecretValue" in json.dumps(s["Action"])]
        self.assertEqual(reads, [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": token}])
        no_token = [s for p in props("ExecutionRole", UseAuthToken=False)["Policies"]
                    for s in statements(p["PolicyDocument"]) if "secretsmanager" in json.dumps(s)]
        self.assertEqual(no_token, [])

    def test_tls_is_an_option_the_binaries_support(self):
        self.assertEqual(STACK["Parameters"]["TlsSecretArn"]["Default"], "")
        warm = env("TranscoderTaskDefinition", UseTls=True)
        self.assertEqual((warm["TRANSCODER_TLS_CERT"], warm["TRANSCODER_TLS_KEY"]), ("/tmp/tls/cert.pem", "/tmp/tls/key.pem"))
        self.assertTrue(warm["TRANSCODER_HEALTH_ENDPOINT"].startswith("https://"))
        self.assertNotIn("TRANSCODER_PEERS", warm, "the peer client trusts public CAs only")
        self.assertIn("TRANSCODER_PEERS", env("TranscoderTaskDefinition"))
        consumer = env("ConsumerTaskDefinition", UseTls=True)
        self.assertTrue(consumer["TRANSCODER_ENDPOINTS"]["Fn::Sub"].startswith("https://"))
        self.assertEqual(consumer["TRANSCODER_CA_CERT"], "/tmp/tls/ca.pem")
        # What the binaries read (serve's TLS flags, the client's CA, the health check's URL).
        serve = (ROOT / "transcoder/src/cli/serve.rs").read_text()
        for name in ("TRANSCODER_TLS_CERT", "TRANSCODER_TLS_KEY"):
            self.assertIn(f'env = "{name}"', serve)
        self.assertIn('env = "TRANSCODER_CA_CERT"', (ROOT / "consumer/src/config.rs").read_text())
        health = (ROOT / "transcoder/src/cli/healthcheck.rs").read_text()
        for name in ("TRANSCODER_CA_CERT", "TRANSCODER_HEALTH_ENDPOINT"):
            self.assertIn(f'env = "{name}"', health)
        # Off by default: no shell in front of the image's entrypoint.
        self.assertNotIn("EntryPoint", container("TranscoderTaskDefinition"))
        self.assertNotIn("EntryPoint", container("ConsumerTaskDefinition"))

    def test_with_tls_the_pems_become_files_and_leave_the_environment(self):
        entry = container("TranscoderTaskDefinition", UseTls=True)["EntryPoint"]
        self.assertEqual(entry[:2], ["/bin/sh", "-c"])
        self.assertIn("exec /usr/bin/tini -s -- transcoder", entry[2])
        with tempfile.TemporaryDirectory() as tmp:
            stub = Path(tmp) / "tini"
            stub.write_text('#!/bin/sh\necho "args: $*"\necho "cert env: ${TLS_CERT_PEM:-unset}"\n'
                            f'cat {tmp}/tls/cert.pem {tmp}/tls/key.pem {tmp}/tls/ca.pem\n')
            stub.chmod(0o755)
            script = entry[2].replace("/usr/bin/tini", str(stub)).replace("/tmp/tls", f"{tmp}/tls")
            run = subprocess.run([entry[0], entry[1], script, *entry[3:], *container(
                "TranscoderTaskDefinition", UseTls=True)["Command"]], capture_output=True, text=True,
                env={"PATH": os.environ["PATH"], "TLS_CERT_PEM": "CERT", "TLS_KEY_PEM": "KEY", "TLS_CA_PEM": "CA"})
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertEqual(run.stdout.splitlines(),
                             ["args: -s -- transcoder serve", "cert env: unset", "CERT", "KEY", "CA"])
            self.assertEqual(stat.S_IMODE((Path(tmp) / "tls" / "key.pem").stat().st_mode), 0o600)

    def test_both_buckets_refuse_plain_http(self):
        for bucket, policy in (("RawBucket", "RawBucketPolicy"), ("OutputBucket", "OutputBucketPolicy")):
            self.assertNotIn("Condition", RESOURCES[policy], "always, whatever serves the output")
            for conditions in ({}, {"UseCloudFront": False}):
                p = props(policy, **conditions)
                self.assertEqual(p["Bucket"], {"Ref": bucket})
                (deny,) = [s for s in statements(p["PolicyDocument"]) if s["Effect"] == "Deny"]
                self.assertEqual((deny["Principal"], deny["Action"]), ("*", "s3:*"))
                self.assertEqual(deny["Condition"], {"Bool": {"aws:SecureTransport": "false"}})
                self.assertEqual(json.dumps(deny["Resource"]),
                                 json.dumps([{"Fn::GetAtt": [bucket, "Arn"]}, {"Fn::Sub": f"${{{bucket}.Arn}}/*"}]))
        reads = [s for s in statements(props("OutputBucketPolicy")["PolicyDocument"]) if s["Effect"] == "Allow"]
        self.assertEqual([s["Sid"] for s in reads], ["CloudFrontReads"])
        self.assertEqual(statements(props("OutputBucketPolicy", UseCloudFront=False)["PolicyDocument"]),
                         [deny])


class Naming(unittest.TestCase):
    def test_names_that_are_global_to_the_account_carry_the_region(self):
        for name in of_type("AWS::IAM::Role"):
            self.assertIn("${AWS::Region}", props(name)["RoleName"]["Fn::Sub"], name)
        self.assertIn("${AWS::Region}", props("Dashboard")["DashboardName"]["Fn::Sub"])
        self.assertIn("${AWS::Region}", props("PlaybackOriginAccess")["OriginAccessControlConfig"]["Name"]["Fn::Sub"])
        # IAM allows 64 characters: the longest name with the longest prefix and region fits.
        longest = max((props(n)["RoleName"]["Fn::Sub"] for n in of_type("AWS::IAM::Role")), key=len)
        self.assertLessEqual(len(longest.replace("${Name}", "x" * 21).replace("${AWS::Region}", "ap-southeast-7")), 64)


# Fargate's CPU and memory pairs (MiB), from its task size table.
FARGATE = {
    "2048": set(range(4096, 16384 + 1, 1024)),
    "4096": set(range(8192, 30720 + 1, 1024)),
    "8192": set(range(16384, 61440 + 1, 4096)),
    "16384": set(range(32768, 122880 + 1, 8192)),
}


class Parameters(unittest.TestCase):
    def test_the_rules_refuse_every_size_fargate_does_not_offer_and_accept_the_rest(self):
        defaults = {k: str(v.get("Default", "")) for k, v in STACK["Parameters"].items()}
        self.assertEqual(rules_accept(STACK, defaults), [])
        self.assertEqual(set(STACK["Parameters"]["TranscoderCpu"]["AllowedValues"]), set(FARGATE))
        for cpu, valid in FARGATE.items():
            for memory in range(512, 131072 + 1, 512):
                failed = rules_accept(STACK, {**defaults, "TranscoderCpu": cpu, "TranscoderMemory": str(memory)})
                self.assertEqual(not failed, memory in valid, (cpu, memory, failed))

    def test_the_template_fits_what_cloudformation_takes_inline(self):
        # deploy.sh sends the template in the request, which CloudFormation takes up to
        # 51,200 bytes; past that it must go through an S3 bucket.
        self.assertLessEqual((ROOT / "deploy" / "stack.yaml").stat().st_size, 51200)


class ImageSize(unittest.TestCase):
    """The transcoder image installs ffmpeg built with what the transcoder uses, not Debian's
    ffmpeg with its ~200 packages (docs/operations.md: The transcoder image)."""

    def test_the_runtime_stage_installs_the_small_ffmpeg_with_tini_and_the_same_entrypoint(self):
        text = (ROOT / "docker" / "transcoder.Dockerfile").read_text()
        runtime = text[text.index("FROM debian:bookworm-slim AS runtime"):].replace("\\\n", " ")
        self.assertRegex(runtime, r"RUN --mount=type=bind,from=ffmpeg,source=/out,target=/tmp/ffmpeg")
        self.assertRegex(runtime, r"apt-get install -y --no-install-recommends /tmp/ffmpeg/vod-ffmpeg\.deb ca-certificates tini")
        self.assertNotRegex(runtime, r"install [^&]*\bffmpeg ")
        self.assertIn('ENTRYPOINT ["/usr/bin/tini", "-s", "--", "transcoder"]', runtime)
        stage = text[text.index("AS ffmpeg"):text.index("AS runtime")]
        self.assertIn("COPY docker/build-ffmpeg.sh", stage)

    def test_the_build_keeps_x264_aac_zscale_hls_and_puts_the_programs_in_usr_bin(self):
        script = (ROOT / "docker" / "build-ffmpeg.sh").read_text()
        subprocess.run(["sh", "-n", str(ROOT / "docker" / "build-ffmpeg.sh")], check=True)
        for flag in ("--prefix=/usr", "--enable-gpl", "--enable-libx264", "--enable-libzimg",
                     "--enable-libdav1d", "--disable-autodetect", "--disable-avdevice", "--disable-ffplay"):
            self.assertIn(flag, script)
        # Nothing the transcoder uses is switched off: aac, mjpeg, the hls muxer and the native
        # decoders and demuxers stay at upstream's default (on).
        self.assertNotRegex(script, r"--disable-(everything|encoders|muxers|decoders|demuxers|filters|protocols)")
        self.assertIn("apt-get source", script)
        self.assertIn("Provides: ffmpeg", script)


if __name__ == "__main__":
    unittest.main()
