"""deploy/: the templates checked statically, and deploy.sh / destroy.sh run against moto's
server. Run by scripts/test.sh with the moto virtualenv's Python:

    python -m unittest discover -s deploy/tests

moto's CloudFormation builds only part of what the template declares: it skips bucket
notifications and policies, queue policies, CloudFront, Cloud Map, secrets, alarms, metric
filters and scaling, and it drops a cluster's capacity providers and most task definition
settings. Those settings are checked in the template itself (here, in test_operate.py, and by
cfn-lint against CloudFormation's own resource schemas); what moto does build is checked in the
account after the deploy. Its DeleteStack leaves route tables, internet gateways, VPC endpoints,
ECS clusters, services and task definitions behind; destroy.sh removes what a stack leaves, and
the teardown tests look for every kind of resource afterwards.
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
from template import load_template, resolve, statements  # noqa: E402

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

    def test_cfn_lint_finds_nothing_not_even_informational(self):
        run = subprocess.run(
            [str(TOOLS_BIN / "cfn-lint"), "--include-checks", "I", "--", str(STACK), str(IMAGES)],
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
        every_branch = [{"UseAuthToken": a, "UseTls": t} for a in (True, False) for t in (True, False)]
        for name, role in roles.items():
            for policy in (p for c in every_branch for p in resolve(role["Properties"]["Policies"], c)):
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
        defaults = {"UseTls": False, "CreateNetwork": True, "PublicIp": True}
        env = {e["Name"]: e["Value"] for e in resolve(self.resources["ConsumerTaskDefinition"]["Properties"]
               ["ContainerDefinitions"][0]["Environment"], defaults)}
        self.assertEqual(namespace, {"Fn::Sub": "${Name}.internal"})
        self.assertEqual(env["TRANSCODER_ENDPOINTS"],
                         {"Fn::Sub": "http://" + service["Name"] + ".${Name}.internal:50051"})
        with_tls = {e["Name"]: e["Value"] for e in resolve(self.resources["ConsumerTaskDefinition"]["Properties"]
                    ["ContainerDefinitions"][0]["Environment"], {**defaults, "UseTls": True})}
        self.assertEqual(with_tls["TRANSCODER_ENDPOINTS"],
                         {"Fn::Sub": "https://" + service["Name"] + ".${Name}.internal:50051"})
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

    def test_a_stack_of_its_own_network_deploys_twice_and_goes_whole(self):
        out = self.run_script("deploy.sh")
        self.assertIn("Successfully created/updated stack - vodtest", out)
        ec2 = self.client("ec2")
        (vpc,) = [v for v in ec2.describe_vpcs()["Vpcs"] if v["CidrBlock"] == "10.42.0.0/16"]
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]
        self.assertEqual(len({s["AvailabilityZone"] for s in subnets}), 2)
        endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
        self.assertEqual([e["ServiceName"] for e in endpoints["VpcEndpoints"]], ["com.amazonaws.us-east-1.s3"])
        self.check_resources()
        before = self.physical_ids()
        second = self.run_script("deploy.sh")
        self.assertEqual(second.count("No changes to deploy"), 2, second)
        self.assertEqual(self.physical_ids(), before)

        # The case: moto's DeleteStack fails on the VPC (DependencyViolation: the route
        # table it never deletes), drops the stack, and leaves the network; destroy.sh removes
        # what the stack recorded and goes on to the images stack.
        out = self.run_script("destroy.sh", "--yes")
        self.assertIn("removed.", out)
        self.assert_nothing_left()

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

        # As after real use: something in both buckets, and a one-shot task running, started
        # by the consumer outside any service, in the job tasks' group. (moto cannot run the
        # stack's own job task definition: it keeps no container memory from CloudFormation.)
        s3, ecs, ec2 = self.client("s3"), self.client("ecs"), self.client("ec2")
        raw = "vodtest-raw-123456789012-us-east-1"
        s3.put_object(Bucket=raw, Key="uploads/a.mp4", Body=b"x")
        s3.put_object(Bucket="vodtest-output-123456789012-us-east-1", Key="hls/uploads/a/master.m3u8", Body=b"x")
        (job_group,) = [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]
                        if g.get("Tags") and {"Key": "Name", "Value": "vodtest-transcoder-job"} in g["Tags"]]
        ecs.register_task_definition(
            family="consumer-started-job", requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
            cpu="256", memory="512", containerDefinitions=[{"name": "transcoder", "image": "x", "memory": 512}])
        (task,) = ecs.run_task(cluster="vodtest", taskDefinition="consumer-started-job", launchType="FARGATE",
                               networkConfiguration={"awsvpcConfiguration": {
                                   "subnets": subnets, "securityGroups": [job_group]}})["tasks"]

        # The warm pool's scaling, as CloudFormation makes it on AWS (moto's does not).
        scaling = self.client("application-autoscaling")
        warm = "service/vodtest/vodtest-transcoder"
        scaling.register_scalable_target(ServiceNamespace="ecs", ResourceId=warm, MinCapacity=2,
                                         MaxCapacity=4, ScalableDimension="ecs:service:DesiredCount")

        out = self.run_script("destroy.sh", "--yes")
        # Nothing runs or writes before the buckets are emptied and the stacks go, and scaling
        # cannot start the pool again meanwhile.
        (target,) = scaling.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=[warm])["ScalableTargets"]
        self.assertEqual((target["MinCapacity"], target["MaxCapacity"]), (0, 0))
        scaling.deregister_scalable_target(ServiceNamespace="ecs", ResourceId=warm,
                                           ScalableDimension="ecs:service:DesiredCount")
        order = [out.index(step) for step in (
            "pinning the warm pool's scaling at 0", "scaling vodtest-consumer to 0", "waiting for 1 tasks to stop",
            "emptying s3://vodtest-raw", "deleting stack vodtest\n", "removed.")]
        self.assertEqual(order, sorted(order), out)
        (stopped,) = ecs.describe_tasks(cluster="vodtest", tasks=[task["taskArn"]])["tasks"]
        self.assertEqual(stopped["lastStatus"], "STOPPED")
        ecs.deregister_task_definition(taskDefinition="consumer-started-job:1")
        self.assert_nothing_left(own_vpc=vpc)

    def assert_nothing_left(self, own_vpc=None):
        """Every kind of resource the stacks make, looked for across the account: none left
        but the network the test made itself and moto's defaults."""
        cf, s3, ec2, ecs = (self.client(n) for n in ("cloudformation", "s3", "ec2", "ecs"))
        left = {
            "stacks": [s["StackName"] for s in cf.list_stacks()["StackSummaries"]
                       if s["StackStatus"] != "DELETE_COMPLETE"],
            "buckets": [b["Name"] for b in s3.list_buckets()["Buckets"]],
            "vpcs": [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]
                     if not v["IsDefault"] and v["VpcId"] != own_vpc],
            "subnets": [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]
                        if not s["DefaultForAz"] and s["VpcId"] != own_vpc],
            "internet gateways": [g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"]],
            "endpoints": [e["VpcEndpointId"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]
                          if e["State"].lower() != "deleted"],
            "security groups": [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]
                                if g["GroupName"] != "default"],
            "route tables": [r["RouteTableId"] for r in ec2.describe_route_tables()["RouteTables"]
                             if not any(a.get("Main") for a in r.get("Associations", []))],
            "clusters": [c["clusterName"] for c in ecs.describe_clusters(
                clusters=ecs.list_clusters()["clusterArns"])["clusters"] if c["status"] == "ACTIVE"],
            "task definitions": ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"],
            "roles": [r["RoleName"] for r in self.client("iam").list_roles()["Roles"]],
            "log groups": [g["logGroupName"] for g in self.client("logs").describe_log_groups()["logGroups"]],
            "repositories": [r["repositoryName"] for r in self.client("ecr").describe_repositories()["repositories"]],
            "topics": [t["TopicArn"] for t in self.client("sns").list_topics()["Topics"]],
            "queues": self.client("sqs").list_queues().get("QueueUrls", []),
            "dashboards": [d["DashboardName"] for d in self.client("cloudwatch").list_dashboards()["DashboardEntries"]],
            "alarms": [a["AlarmName"] for a in self.client("cloudwatch").describe_alarms()["MetricAlarms"]],
            "secrets": [s["Name"] for s in self.client("secretsmanager").list_secrets()["SecretList"]],
            "scalable targets": [t["ResourceId"] for t in self.client("application-autoscaling")
                                 .describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]],
            "running tasks": [t for c in ecs.list_clusters()["clusterArns"]
                              for t in ecs.list_tasks(cluster=c, desiredStatus="RUNNING")["taskArns"]],
        }
        self.assertEqual({kind: names for kind, names in left.items() if names}, {})

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
        # The warm pool starts at WarmMinimum (0); scaling sizes it from there.
        self.assertEqual({s["serviceName"]: s["desiredCount"] for s in services},
                         {"vodtest-transcoder": 0, "vodtest-consumer": 1})

        iam = self.client("iam")
        # Named with the region: IAM is global, and a second region deploys the same stack.
        for role in ("vodtest-task-execution-us-east-1", "vodtest-transcoder-us-east-1",
                     "vodtest-consumer-us-east-1"):
            for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]:
                document = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
                if isinstance(document, str):
                    # moto keeps a document made by CloudFormation as Python's repr of it.
                    try:
                        document = json.loads(document)
                    except ValueError:
                        document = ast.literal_eval(document)
                for statement in statements(document):
                    if statement is None:
                        continue  # moto keeps an AWS::NoValue list item as null
                    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                    self.assertTrue(all("*" not in a for a in actions), (role, actions))
        groups = {g["logGroupName"] for g in self.client("logs").describe_log_groups()["logGroups"]}
        self.assertLessEqual({"/vodtest/consumer", "/vodtest/transcoder"}, groups)
        repos = self.client("ecr").describe_repositories()["repositories"]
        self.assertEqual({r["repositoryName"]: r["imageTagMutability"] for r in repos},
                         {"vodtest/transcoder": "IMMUTABLE", "vodtest/consumer": "IMMUTABLE"})
        # A security group per role.
        groups = {t["Value"] for g in self.client("ec2").describe_security_groups()["SecurityGroups"]
                  for t in g.get("Tags", []) if t["Key"] == "Name"}
        self.assertLessEqual({"vodtest-warm-transcoder", "vodtest-consumer", "vodtest-transcoder-job"}, groups)
        # The alarm topic, and the dashboard as CloudFormation substituted it: valid JSON.
        topics = [t["TopicArn"] for t in self.client("sns").list_topics()["Topics"]]
        self.assertEqual(topics, ["arn:aws:sns:us-east-1:123456789012:vodtest-alarms"])
        body = self.client("cloudwatch").get_dashboard(DashboardName="vodtest-us-east-1")["DashboardBody"]
        self.assertIn("arn:aws:cloudwatch:us-east-1:123456789012:alarm:vodtest-dead-letters", json.dumps(json.loads(body)))
        # (moto returns no Outputs for this stack: some name resources it does not build.)


if __name__ == "__main__":
    unittest.main()
