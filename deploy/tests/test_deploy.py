"""deploy/: the templates checked statically, and deploy.sh / destroy.sh run against moto's
server. Run by scripts/test.sh with the moto virtualenv's Python:

    python -m unittest discover -s deploy/tests

moto's CloudFormation builds only part of what the template declares: it skips bucket
notifications and policies, queue policies, CloudFront and Cloud Map, and it drops a cluster's
capacity providers and most task definition settings. Those settings are checked in the
template itself (and by cfn-lint against CloudFormation's own resource schemas); what moto
does build is checked in the account after the deploy.
"""

import ast
import json
import os
import socket
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from template import load_template, statements  # noqa: E402

import boto3  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "deploy" / "stack.yaml"
IMAGES = ROOT / "deploy" / "images.yaml"
TOOLS_BIN = Path(os.environ.get("TOOLS_BIN", Path.home() / ".cache/vod-pipeline/tools-venv/bin"))
MOTO_SERVER = os.environ.get(
    "MOTO_SERVER", str(Path.home() / ".cache/vod-pipeline/moto-venv/bin/moto_server")
)


class Template(unittest.TestCase):
    """What the template declares, whatever an emulator makes of it."""

    @classmethod
    def setUpClass(cls):
        cls.stack = load_template(STACK)
        cls.resources = cls.stack["Resources"]

    def of_type(self, kind):
        return {k: v for k, v in self.resources.items() if v["Type"] == kind}

    def test_cfn_lint_finds_nothing(self):
        run = subprocess.run(
            [str(TOOLS_BIN / "cfn-lint"), str(STACK), str(IMAGES)],
            capture_output=True, text=True,
        )
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)

    def test_the_queue_has_a_dead_letter_queue(self):
        queue = self.resources["UploadQueue"]["Properties"]
        self.assertEqual(queue["RedrivePolicy"]["deadLetterTargetArn"],
                         {"Fn::GetAtt": ["UploadDeadLetterQueue", "Arn"]})
        self.assertEqual(queue["RedrivePolicy"]["maxReceiveCount"], {"Ref": "MaxReceiveCount"})
        self.assertEqual(queue["ReceiveMessageWaitTimeSeconds"], 20)

    def test_uploads_to_the_raw_bucket_notify_the_queue_and_only_s3_may_send(self):
        raw = self.resources["RawBucket"]
        config = raw["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
        self.assertEqual(config, [{"Event": "s3:ObjectCreated:*",
                                   "Queue": {"Fn::GetAtt": ["UploadQueue", "Arn"]}}])
        self.assertEqual(raw["DependsOn"], "UploadQueuePolicy", "the policy must exist first")
        (statement,) = statements(self.resources["UploadQueuePolicy"]["Properties"]["PolicyDocument"])
        self.assertEqual(statement["Principal"], {"Service": "s3.amazonaws.com"})
        self.assertEqual(statement["Action"], "sqs:SendMessage")
        self.assertIn("aws:SourceArn", statement["Condition"]["ArnEquals"])

    def test_a_network_of_its_own_resolves_names_and_reaches_s3_privately(self):
        # Cloud Map's private DNS needs DNS support and hostnames in the VPC.
        vpc = self.resources["Vpc"]["Properties"]
        self.assertTrue(vpc["EnableDnsSupport"] and vpc["EnableDnsHostnames"])
        self.assertEqual(self.resources["S3Endpoint"]["Properties"]["VpcEndpointType"], "Gateway")
        for name in ("Vpc", "PublicSubnetA", "PublicSubnetB", "S3Endpoint", "InternetGateway"):
            self.assertEqual(self.resources[name]["Condition"], "CreateNetwork", name)

    def test_buckets_are_private_and_encrypted(self):
        for name in ("RawBucket", "OutputBucket"):
            props = self.resources[name]["Properties"]
            block = props["PublicAccessBlockConfiguration"]
            self.assertTrue(all(block[k] for k in (
                "BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")), name)
            self.assertIn("BucketEncryption", props, name)

    def test_the_cluster_offers_fargate_and_spot(self):
        cluster = self.resources["Cluster"]["Properties"]
        self.assertEqual(cluster["CapacityProviders"], ["FARGATE", "FARGATE_SPOT"])
        self.assertEqual(self.stack["Parameters"]["JobCapacityProvider"]["Default"], "FARGATE_SPOT")

    def test_roles_name_every_action_and_only_ecr_login_has_a_wildcard_resource(self):
        roles = self.of_type("AWS::IAM::Role")
        self.assertEqual(set(roles), {"ExecutionRole", "TranscoderRole", "ConsumerRole"})
        for name, role in roles.items():
            for policy in role["Properties"]["Policies"]:
                for statement in statements(policy["PolicyDocument"]):
                    actions = statement["Action"]
                    actions = actions if isinstance(actions, list) else [actions]
                    for action in actions:
                        self.assertNotIn("*", action, f"{name}: {action}")
                    if statement["Resource"] == "*":
                        # AWS accepts no other resource for this one action.
                        self.assertEqual(actions, ["ecr:GetAuthorizationToken"], name)

    def test_the_consumer_may_only_run_the_job_task_and_pass_its_roles(self):
        policy = self.resources["ConsumerRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        by_action = {}
        for statement in statements(policy):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for action in actions:
                by_action.setdefault(action, []).append(statement)
        (run_task,) = by_action["ecs:RunTask"]
        self.assertIn("task-definition/${Name}-transcoder-job:*", json.dumps(run_task["Resource"]))
        self.assertIn("ecs:cluster", run_task["Condition"]["ArnEquals"])
        (pass_role,) = by_action["iam:PassRole"]
        self.assertEqual(pass_role["Condition"]["StringEquals"]["iam:PassedToService"], "ecs-tasks.amazonaws.com")

    def test_transcoder_tasks_fit_the_ladder_and_spot_notice(self):
        for name in ("TranscoderTaskDefinition", "TranscoderJobTaskDefinition"):
            props = self.resources[name]["Properties"]
            self.assertEqual(props["NetworkMode"], "awsvpc")
            self.assertEqual(props["RequiresCompatibilities"], ["FARGATE"])
            self.assertEqual(props["EphemeralStorage"], {"SizeInGiB": {"Ref": "EphemeralStorageGiB"}})
            (container,) = props["ContainerDefinitions"]
            # Fargate's maximum: the two-minute Spot notice to drain and hand messages back.
            self.assertEqual(container["StopTimeout"], 120, name)
        warm = self.resources["TranscoderTaskDefinition"]["Properties"]["ContainerDefinitions"][0]
        self.assertEqual(warm["Command"], ["serve"])
        self.assertEqual(warm["HealthCheck"]["Command"], ["CMD", "transcoder", "healthcheck"])
        job = self.resources["TranscoderJobTaskDefinition"]["Properties"]["ContainerDefinitions"][0]
        self.assertEqual(job["Command"], ["run"])
        self.assertGreaterEqual(int(self.stack["Parameters"]["TranscoderCpu"]["Default"]), 2048)

    def test_the_consumer_finds_the_warm_pool_through_service_discovery(self):
        registry = self.resources["TranscoderService"]["Properties"]["ServiceRegistries"][0]
        self.assertIn("TranscoderDiscovery", json.dumps(registry))
        namespace = self.resources["Namespace"]["Properties"]["Name"]
        service = self.resources["TranscoderDiscovery"]["Properties"]
        self.assertEqual(service["DnsConfig"]["RoutingPolicy"], "MULTIVALUE")
        env = {e["Name"]: e["Value"] for e in self.resources["ConsumerTaskDefinition"]["Properties"]
               ["ContainerDefinitions"][0]["Environment"]}
        self.assertEqual(namespace, {"Fn::Sub": "${Name}.internal"})
        self.assertEqual(env["TRANSCODER_ENDPOINTS"],
                         {"Fn::Sub": "http://" + service["Name"] + ".${Name}.internal:50051"})
        self.assertEqual(env["ECS_TASK_DEFINITION"], {"Fn::Sub": "${Name}-transcoder-job"})

    def test_every_log_group_has_a_retention(self):
        groups = self.of_type("AWS::Logs::LogGroup")
        self.assertEqual(len(groups), 2)
        for group in groups.values():
            self.assertIn("RetentionInDays", group["Properties"])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DeployOnMoto(unittest.TestCase):
    """deploy.sh twice and destroy.sh against moto's server (a fresh one per test)."""

    def setUp(self):
        cls = self
        port = free_port()
        cls.moto = subprocess.Popen([MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.endpoint = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        cls.env = dict(os.environ, AWS_ENDPOINT_URL=cls.endpoint, AWS_REGION="us-east-1",
                       AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing",
                       AWS_SECRET_ACCESS_KEY="testing", AWS_EC2_METADATA_DISABLED="true",
                       STACK_NAME="vodtest", TRANSCODER_IMAGE="example/transcoder:1",
                       CONSUMER_IMAGE="example/consumer:1")

    def tearDown(self):
        self.moto.kill()
        self.moto.wait()

    def client(self, name):
        return boto3.client(name, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def run_script(self, *args):
        run = subprocess.run([str(ROOT / "deploy" / args[0]), *args[1:]], env=self.env,
                             capture_output=True, text=True, timeout=600)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        return run.stdout

    def physical_ids(self):
        cf = self.client("cloudformation")
        return {stack: sorted((r["LogicalResourceId"], r.get("PhysicalResourceId"))
                              for r in cf.list_stack_resources(StackName=stack)["StackResourceSummaries"])
                for stack in ("vodtest", "vodtest-images")}

    def existing_network(self):
        """A VPC and two subnets made outside the stack, as a team with its own network has."""
        ec2 = self.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.50.{i}.0/24")["Subnet"]["SubnetId"]
                   for i in (1, 2)]
        return vpc, subnets

    def test_a_stack_of_its_own_network(self):
        # moto cannot delete the VPC's gateway attachment and endpoint through CloudFormation,
        # so this test stops at the deploy; the next one runs destroy.sh.
        out = self.run_script("deploy.sh")
        self.assertIn("Successfully created/updated stack - vodtest", out)
        ec2 = self.client("ec2")
        (vpc,) = [v for v in ec2.describe_vpcs()["Vpcs"] if v["CidrBlock"] == "10.42.0.0/16"]
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]
        self.assertEqual(len({s["AvailabilityZone"] for s in subnets}), 2)
        endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
        self.assertEqual([e["ServiceName"] for e in endpoints["VpcEndpoints"]], ["com.amazonaws.us-east-1.s3"])
        self.check_resources()
        second = self.run_script("deploy.sh")
        self.assertEqual(second.count("No changes to deploy"), 2, second)

    def test_deploy_builds_the_stack_a_second_run_changes_nothing_and_destroy_removes_it(self):
        vpc, subnets = self.existing_network()
        self.env.update(VPC_ID=vpc, SUBNET_IDS=",".join(subnets), ASSIGN_PUBLIC_IP="DISABLED")
        first = self.run_script("deploy.sh")
        self.assertIn("Successfully created/updated stack - vodtest-images", first)
        self.assertIn("Successfully created/updated stack - vodtest", first)
        self.check_resources()
        before = self.physical_ids()

        second = self.run_script("deploy.sh")
        self.assertEqual(second.count("No changes to deploy"), 2, second)
        self.assertNotIn("Successfully created/updated", second)
        self.assertEqual(self.physical_ids(), before)

        # Something in the buckets, as after real use: destroy empties them first.
        s3 = self.client("s3")
        raw = "vodtest-raw-123456789012-us-east-1"
        s3.put_object(Bucket=raw, Key="uploads/a.mp4", Body=b"x")
        self.run_script("destroy.sh", "--yes")
        names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        self.assertNotIn(raw, names)
        stacks = self.client("cloudformation").list_stacks()["StackSummaries"]
        live = [s["StackName"] for s in stacks if s["StackStatus"] != "DELETE_COMPLETE"]
        self.assertEqual(live, [])

    def check_resources(self):
        s3, sqs, ecs = self.client("s3"), self.client("sqs"), self.client("ecs")
        names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        self.assertLessEqual({"vodtest-raw-123456789012-us-east-1",
                              "vodtest-output-123456789012-us-east-1"}, names)
        queue = sqs.get_queue_url(QueueName="vodtest-uploads")["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attrs["RedrivePolicy"])
        self.assertTrue(redrive["deadLetterTargetArn"].endswith(":vodtest-uploads-dlq"))
        self.assertEqual(int(redrive["maxReceiveCount"]), 5)
        self.assertEqual(attrs["VisibilityTimeout"], "300")
        sqs.get_queue_url(QueueName="vodtest-job-status")

        self.assertEqual(len(ecs.describe_clusters(clusters=["vodtest"])["clusters"]), 1)
        families = set(ecs.list_task_definition_families()["families"])
        self.assertLessEqual({"vodtest-transcoder", "vodtest-transcoder-job", "vodtest-consumer"}, families)
        services = ecs.describe_services(cluster="vodtest",
                                         services=["vodtest-transcoder", "vodtest-consumer"])["services"]
        self.assertEqual({s["serviceName"]: s["desiredCount"] for s in services},
                         {"vodtest-transcoder": 2, "vodtest-consumer": 1})

        iam = self.client("iam")
        for role in ("vodtest-task-execution", "vodtest-transcoder", "vodtest-consumer"):
            for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]:
                document = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
                if isinstance(document, str):
                    # moto keeps a document made by CloudFormation as Python's repr of it.
                    try:
                        document = json.loads(document)
                    except ValueError:
                        document = ast.literal_eval(document)
                for statement in statements(document):
                    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                    self.assertTrue(all("*" not in a for a in actions), (role, actions))
        groups = {g["logGroupName"] for g in self.client("logs").describe_log_groups()["logGroups"]}
        self.assertLessEqual({"/vodtest/consumer", "/vodtest/transcoder"}, groups)
        repos = {r["repositoryName"] for r in self.client("ecr").describe_repositories()["repositories"]}
        self.assertEqual(repos, {"vodtest/transcoder", "vodtest/consumer"})


if __name__ == "__main__":
    unittest.main()
