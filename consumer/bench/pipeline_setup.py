"""Resources for consumer/bench/dispatch.sh on moto, and N uploads of one small clip.

Prints QUEUE_URL=... and SUBNET=... for the shell to source, once the queue holds a
notification for every upload. With --count-tasks, prints how many tasks the cluster has.
"""
import sys
import time

import boto3

s3, sqs, ecs, ec2 = (boto3.client(name) for name in ("s3", "sqs", "ecs", "ec2"))

if sys.argv[1] == "--count-tasks":
    count = 0
    for page in ecs.get_paginator("list_tasks").paginate(cluster="vod"):
        count += len(page["taskArns"])
    print(count)
    sys.exit(0)

clip, n = sys.argv[1], int(sys.argv[2])
for bucket in ("raw", "out"):
    s3.create_bucket(Bucket=bucket)
dlq = sqs.create_queue(QueueName="uploads-dlq")["QueueUrl"]
dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
queue = sqs.create_queue(
    QueueName="uploads",
    Attributes={
        "VisibilityTimeout": "600",
        "RedrivePolicy": '{"deadLetterTargetArn":"%s","maxReceiveCount":"5"}' % dlq_arn,
    },
)["QueueUrl"]
queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
s3.put_bucket_notification_configuration(
    Bucket="raw",
    NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]
    },
)
ecs.create_cluster(clusterName="vod", capacityProviders=["FARGATE", "FARGATE_SPOT"])
ecs.register_task_definition(
    family="transcoder-job",
    networkMode="awsvpc",
    requiresCompatibilities=["FARGATE"],
    cpu="2048",
    memory="4096",
    containerDefinitions=[
        {"name": "transcoder", "image": "vod/transcoder", "essential": True, "memory": 4096}
    ],
)
vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
# moto's Fargate RunTask needs DNS hostnames on the subnet's VPC.
ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.1.0/24")["Subnet"]["SubnetId"]

body = open(clip, "rb").read()
for i in range(n):
    s3.put_object(Bucket="raw", Key="uploads/clip-%05d.mp4" % i, Body=body)
deadline = time.time() + 120
while True:
    attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    # One s3:TestEvent besides the uploads.
    if int(attrs["Attributes"]["ApproximateNumberOfMessages"]) >= n + 1:
        break
    if time.time() > deadline:
        sys.exit("the notifications did not all arrive")
    time.sleep(0.2)
print("QUEUE_URL=%s" % queue)
print("SUBNET=%s" % subnet)
