"""moto's server with IAM enforced, and the stack's resources and roles on it.

The roles are made from deploy/stack.yaml itself: each role's trust and inline policies are
read out of the template and resolved against the resources made here (named as the template
names them), so a statement removed from the template is a permission removed here. Each
program then gets credentials of its own role from sts:AssumeRole, as an ECS task does.

moto enforces IAM once told to (`INITIAL_NO_AUTH_ACTION_COUNT`, reset through its
`/moto-api/reset-auth`): every request must be signed by a known key, and S3 and SQS calls are
checked against the caller's policies with the real resource ARN. Two gaps remain in moto, and
the ECS gate (iam_gate.py) closes them for the one ECS call we make: moto checks ECS actions
against resource "*", and evaluates no Condition, so a statement scoped to a task definition
or a cluster would never match; nor does moto ask for iam:PassRole on RunTask.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "tests"))
from template import Resolver, load_template  # noqa: E402

STACK = ROOT / "deploy" / "stack.yaml"
MOTO_SERVER = os.environ.get(
    "MOTO_SERVER", str(Path.home() / ".cache/vod-pipeline/moto-venv/bin/moto_server")
)
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
NAME = "vod"  # the stack's default Name


def free_loopback_block():
    """A 127.X.Y.0/24 block whose .1 port 4566 and .2/.3 port 50051 are free: each process
    keeps the port its image or task definition gives it, on an address of its own."""
    for _ in range(200):
        base = f"127.{os.getpid() % 200 + 20}.{int.from_bytes(os.urandom(1), 'big')}"
        try:
            for host, port in ((f"{base}.1", 4566), (f"{base}.2", 50051), (f"{base}.3", 50051)):
                with socket.socket() as s:
                    s.bind((host, port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free loopback block")


def start_moto(address, log, env):
    """moto's server on `address`:4566 (its output to the file `log`, `env` added to ours),
    once it answers."""
    process = subprocess.Popen([MOTO_SERVER, "-H", address, "-p", "4566"],
                               stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://{address}:4566/moto-api/", timeout=1)
            return process
        except OSError:
            if time.time() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"moto did not start on {address}:4566")
            time.sleep(0.1)


class Emulator:
    """moto on `address`:4566 with the stack's buckets, queues, cluster, network and roles.

    `drop` names statements to leave out of the template's policies ("RoleLogicalId:index",
    index into the role's first policy's statements): the check that the tests bite."""

    def __init__(self, address, workdir, drop=()):
        self.endpoint = f"http://{address}:4566"
        self.template = load_template(STACK)
        self.log = open(Path(workdir) / "moto.log", "w")
        self.process = start_moto(address, self.log, {"MOTO_ACCOUNT_ID": ACCOUNT})
        self.admin = None
        self._make_resources()
        self.roles = self._make_roles(set(drop))
        self._enforce()

    def client(self, service, credentials=None):
        """A boto3 client for `service` with `credentials` (the admin's by default)."""
        credentials = credentials or self.admin
        return boto3.client(
            service, endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials.get("SessionToken"),
        )

    def stop(self):
        self.process.kill()
        self.process.wait()
        self.log.close()

    # --- set-up, before IAM is enforced -------------------------------------------------
    def _bootstrap_client(self, service):
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")

    def _make_resources(self):
        """The resources the roles and task definitions name, named as the template does."""
        resources = self.template["Resources"]
        # The images are the ones built here (deploy.sh passes their registry URIs).
        pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
                  "AWS::StackName": NAME, "Name": NAME,
                  "TranscoderImage": "vod/transcoder", "ConsumerImage": "vod/consumer"}
        early = Resolver(self.template, pseudo, {})
        s3, sqs = self._bootstrap_client("s3"), self._bootstrap_client("sqs")
        ecs, ec2 = self._bootstrap_client("ecs"), self._bootstrap_client("ec2")
        refs, attrs = dict(pseudo), {}
        for logical in ("RawBucket", "OutputBucket"):
            bucket = early(resources[logical]["Properties"]["BucketName"])
            s3.create_bucket(Bucket=bucket)
            refs[logical] = bucket
            attrs[f"{logical}.Arn"] = f"arn:aws:s3:::{bucket}"
        for logical in ("UploadDeadLetterQueue", "StatusQueue", "UploadQueue"):
            name = early(resources[logical]["Properties"]["QueueName"])
            props = Resolver(self.template, refs, attrs)(resources[logical]["Properties"])
            attributes = {}
            if "VisibilityTimeout" in props:
                attributes["VisibilityTimeout"] = str(props["VisibilityTimeout"])
            if "RedrivePolicy" in props:
                attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            refs[logical] = url
            attrs[f"{logical}.Arn"] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
            attrs[f"{logical}.QueueName"] = name
        s3.put_bucket_notification_configuration(
            Bucket=refs["RawBucket"],
            NotificationConfiguration={"QueueConfigurations": [
                {"QueueArn": attrs["UploadQueue.Arn"], "Events": ["s3:ObjectCreated:*"]}]},
        )
        cluster = early(resources["Cluster"]["Properties"]["ClusterName"])
        arn = ecs.create_cluster(clusterName=cluster)["cluster"]["clusterArn"]
        refs["Cluster"], attrs["Cluster.Arn"] = cluster, arn
        # moto's Fargate RunTask wants DNS hostnames on the subnet's VPC, as the template's has.
        vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        refs["Vpc"] = vpc
        for logical, cidr in (("PublicSubnetA", "10.42.0.0/20"), ("PublicSubnetB", "10.42.16.0/20")):
            refs[logical] = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
        for logical, kind in resources.items():
            if kind["Type"] == "AWS::EC2::SecurityGroup":
                group = ec2.create_security_group(
                    GroupName=f"{NAME}-{logical}", Description=logical, VpcId=vpc)["GroupId"]
                refs[logical], attrs[f"{logical}.GroupId"] = group, group
            elif kind["Type"] == "AWS::Logs::LogGroup":
                group = early(kind["Properties"]["LogGroupName"])
                refs[logical] = group
                attrs[f"{logical}.Arn"] = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}"
            elif kind["Type"] == "AWS::SecretsManager::Secret":
                secret = self._bootstrap_client("secretsmanager").create_secret(
                    Name=f"{NAME}-{logical}", SecretString=os.urandom(16).hex())
                refs[logical] = secret["ARN"]
        self.refs, self.attrs = refs, attrs

    def _make_roles(self, drop):
        """Every AWS::IAM::Role of the template, with its policies as the template writes them
        (minus `drop`), and credentials for each from sts:AssumeRole."""
        iam, sts = self._bootstrap_client("iam"), self._bootstrap_client("sts")
        roles = {}
        role_resources = {k: v for k, v in self.template["Resources"].items()
                          if v["Type"] == "AWS::IAM::Role"}
        # Role ARNs first: policies name each other's roles (iam:PassRole).
        for logical, role in role_resources.items():
            name = Resolver(self.template, self.refs, self.attrs)(role["Properties"]["RoleName"])
            self.refs[logical] = name
            self.attrs[f"{logical}.Arn"] = f"arn:aws:iam::{ACCOUNT}:role/{name}"
        resolve = Resolver(self.template, self.refs, self.attrs)
        for logical, role in role_resources.items():
            props = role["Properties"]
            name = self.refs[logical]
            iam.create_role(RoleName=name,
                            AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]))
            for p, policy in enumerate(props.get("Policies", [])):
                document = resolve(policy["PolicyDocument"])
                kept = [s for i, s in enumerate(document["Statement"])
                        if p != 0 or f"{logical}:{i}" not in drop]
                document = {**document, "Statement": kept}
                iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"],
                                    PolicyDocument=json.dumps(document))
            assumed = sts.assume_role(RoleArn=self.attrs[f"{logical}.Arn"],
                                      RoleSessionName=f"{logical}-task", DurationSeconds=3600)
            roles[logical] = assumed["Credentials"]
        # The tests' own hands (uploads, checks): a user allowed everything.
        iam.create_user(UserName="tests-admin")
        iam.put_user_policy(UserName="tests-admin", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        self.admin = iam.create_access_key(UserName="tests-admin")["AccessKey"]
        return roles

    def _enforce(self):
        # From now on every request needs a known key and a policy that allows it. (The body
        # is the new INITIAL_NO_AUTH_ACTION_COUNT; plain text, or Flask reads it as a form.)
        request = urllib.request.Request(self.endpoint + "/moto-api/reset-auth", data=b"0",
                                         method="POST", headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request, timeout=5).read()

    # --- what the programs see ------------------------------------------------------------
    def resolver(self):
        """Resolves the template's values against what was made here."""
        return Resolver(self.template, self.refs, self.attrs)

    def role_env(self, logical):
        """The AWS environment of a process running with role `logical`."""
        credentials = self.roles[logical]
        return {
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"],
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def role_policies(self, role_name):
        """The inline policy documents of the role named `role_name`, as IAM holds them."""
        iam = self.client("iam")
        return [iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
                for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]]

    def role_of_key(self, access_key_id):
        """The role logical id whose credentials use `access_key_id`, or None."""
        for logical, credentials in self.roles.items():
            if credentials["AccessKeyId"] == access_key_id:
                return logical
        return None

    # --- the stack's task definitions -----------------------------------------------------
    def container(self, logical, **parameters):
        """The (only) container of task definition `logical`, resolved, with the stack's
        parameters as given (defaults otherwise); its `Secrets` are read from Secrets Manager
        into its Environment, as ECS does when it starts the task."""
        resolve = Resolver(self.template, {**self.refs, **parameters}, self.attrs)
        (container,) = resolve(self.template["Resources"][logical]["Properties"]["ContainerDefinitions"])
        secrets = self.client("secretsmanager")
        for secret in container.get("Secrets", []):
            value = secrets.get_secret_value(SecretId=secret["ValueFrom"])["SecretString"]
            container.setdefault("Environment", []).append({"Name": secret["Name"], "Value": value})
        return container

    def register_task_definition(self, logical):
        """Registers task definition `logical` of the template in moto, in the API's shape."""
        props = self.resolver()(self.template["Resources"][logical]["Properties"])
        (container,) = props["ContainerDefinitions"]
        api_container = {
            "name": container["Name"],
            "image": "vod/transcoder",
            "essential": True,
            # moto sums the containers' memory, so each must declare it.
            "memory": int(props["Memory"]),
            "command": container.get("Command", []),
            "environment": [{"name": e["Name"], "value": str(e["Value"])}
                            for e in container.get("Environment", [])],
            "linuxParameters": {"initProcessEnabled": container.get("LinuxParameters", {})
                                .get("InitProcessEnabled", False)},
        }
        if container.get("EntryPoint"):
            api_container["entryPoint"] = container["EntryPoint"]
        self.client("ecs").register_task_definition(
            family=props["Family"], networkMode=props["NetworkMode"],
            requiresCompatibilities=props["RequiresCompatibilities"],
            cpu=str(props["Cpu"]), memory=str(props["Memory"]),
            executionRoleArn=props["ExecutionRoleArn"], taskRoleArn=props["TaskRoleArn"],
            containerDefinitions=[api_container],
        )
        return props["Family"]
