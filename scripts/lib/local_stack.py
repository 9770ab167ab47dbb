"""The pipeline's AWS resources on an emulator (moto or LocalStack), and the few S3 steps the
local scripts take. Run with the moto virtualenv's Python (it has boto3); the endpoint comes
from AWS_ENDPOINT_URL like every SDK.

  local_stack.py setup [--ecs]     buckets, the queue with its dead-letter queue, the status
                                   queue and the S3 notification; --ecs adds a cluster, the
                                   one-shot task definition and a Fargate-ready subnet. Prints
                                   KEY=VALUE lines for a shell to source. Safe to run twice.
  local_stack.py upload FILE KEY   uploads FILE to the raw bucket as KEY
  local_stack.py wait PREFIX       prints the job's status under PREFIX as it changes, until
                                   done (exit 0) or failed (exit 2)
  local_stack.py download PREFIX DIR   copies everything under PREFIX into DIR
  local_stack.py count-tasks       how many tasks the ECS cluster has

Names come from RAW_BUCKET, OUTPUT_BUCKET, QUEUE_NAME (defaults vod-raw, vod-output,
vod-uploads), the same names docker/compose.yml and .env.example use.
"""

import json
import os
import socket
import sys
import time
import urllib.parse

import boto3
from botocore.exceptions import ClientError

RAW = os.environ.get("RAW_BUCKET", "vod-raw")
OUT = os.environ.get("OUTPUT_BUCKET", "vod-output")
QUEUE = os.environ.get("QUEUE_NAME", "vod-uploads")
CLUSTER = os.environ.get("ECS_CLUSTER", "vod")
TASK_FAMILY = os.environ.get("ECS_TASK_DEFINITION", "vod-transcoder-job")
# Long enough for a job's first heartbeat; the transcoder extends it while it works.
VISIBILITY_SECONDS = "120"
MAX_RECEIVES = "5"


def client(name):
    return boto3.client(name)


def ensure_bucket(s3, name):
    try:
        s3.create_bucket(Bucket=name)
    except ClientError as e:
        if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def queue_arn(sqs, url):
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return attrs["Attributes"]["QueueArn"]


def emulator_answers():
    """False when AWS_ENDPOINT_URL names a host that does not resolve: in compose, no emulator
    profile was chosen, and retrying will not make one appear."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return True
    host = urllib.parse.urlsplit(endpoint).hostname
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return True


def setup(with_ecs):
    if not emulator_answers():
        print(f"no AWS emulator answers as {os.environ['AWS_ENDPOINT_URL']}: start compose with "
              "--profile moto (no account needed) or --profile localstack (needs "
              "LOCALSTACK_AUTH_TOKEN), or set COMPOSE_PROFILES in .env", file=sys.stderr)
        return 78  # EX_CONFIG
    s3, sqs = client("s3"), client("sqs")
    ensure_bucket(s3, RAW)
    ensure_bucket(s3, OUT)
    dlq = sqs.create_queue(QueueName=QUEUE + "-dlq")["QueueUrl"]
    redrive = json.dumps({"deadLetterTargetArn": queue_arn(sqs, dlq), "maxReceiveCount": MAX_RECEIVES})
    queue = sqs.create_queue(
        QueueName=QUEUE,
        Attributes={"VisibilityTimeout": VISIBILITY_SECONDS, "RedrivePolicy": redrive},
    )["QueueUrl"]
    notify = sqs.create_queue(QueueName=QUEUE + "-status")["QueueUrl"]
    s3.put_bucket_notification_configuration(
        Bucket=RAW,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": queue_arn(sqs, queue), "Events": ["s3:ObjectCreated:*"]}
            ]
        },
    )
    print(f"RAW_BUCKET={RAW}")
    print(f"OUTPUT_BUCKET={OUT}")
    print(f"QUEUE_URL={queue}")
    print(f"DLQ_URL={dlq}")
    print(f"NOTIFY_QUEUE_URL={notify}")
    if with_ecs:
        print(f"ECS_SUBNETS={setup_ecs()}")
        print(f"ECS_CLUSTER={CLUSTER}")
        print(f"ECS_TASK_DEFINITION={TASK_FAMILY}")
    return 0


def setup_ecs():
    ecs, ec2 = client("ecs"), client("ec2")
    ecs.create_cluster(clusterName=CLUSTER, capacityProviders=["FARGATE", "FARGATE_SPOT"])
    ecs.register_task_definition(
        family=TASK_FAMILY,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="2048",
        memory="4096",
        # moto sums the containers' memory, so each must declare it.
        containerDefinitions=[
            {"name": "transcoder", "image": "vod/transcoder", "essential": True,
             "memory": 4096, "command": ["run"]}
        ],
    )
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    # moto's Fargate RunTask needs DNS hostnames on the subnet's VPC.
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    return ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.1.0/24")["Subnet"]["SubnetId"]


def upload(path, key):
    client("s3").upload_file(path, RAW, key)


def manifest(s3, prefix):
    try:
        body = s3.get_object(Bucket=OUT, Key=prefix + "manifest.json")["Body"].read()
    except ClientError:
        return None
    return json.loads(body)


def wait(prefix, timeout_s=3600):
    s3 = client("s3")
    last = None
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        record = manifest(s3, prefix) or {}
        status = record.get("status")
        if status != last and status:
            print(f"status: {status}", flush=True)
            last = status
        if status == "done":
            return 0
        if status == "failed":
            print(f"error: {record.get('error', {}).get('message')}", flush=True)
            return 2
        time.sleep(0.5)
    print("timed out waiting for the job", flush=True)
    return 1


def download(prefix, folder):
    s3 = client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=OUT, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix):]
            # Our own output names only; refuse anything that would leave the folder.
            if not relative or relative.startswith("/") or ".." in relative.split("/"):
                continue
            path = os.path.join(folder, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                s3.download_file(OUT, item["Key"], path)
            except ClientError as e:
                # Gone since the listing: a job's prefix lease, released after its record.
                if e.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
                    raise


def count_tasks():
    count = 0
    for page in client("ecs").get_paginator("list_tasks").paginate(cluster=CLUSTER):
        count += len(page["taskArns"])
    print(count)


def main(argv):
    command = argv[1] if len(argv) > 1 else ""
    if command == "setup":
        return setup("--ecs" in argv[2:])
    elif command == "upload" and len(argv) == 4:
        upload(argv[2], argv[3])
    elif command == "wait" and len(argv) == 3:
        return wait(argv[2])
    elif command == "download" and len(argv) == 4:
        download(argv[2], argv[3])
    elif command == "count-tasks":
        count_tasks()
    else:
        print(__doc__, file=sys.stderr)
        return 64
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
