"""Uploads one clip N times to the raw bucket (uploads/clip-00000.mp4 ...) and waits until the
queue holds a notification for each: the backlog for consumer/bench/dispatch.sh. The
resources come first from scripts/lib/local_stack.py setup --ecs.

  backlog.py CLIP N QUEUE_URL
"""
import sys
import time

import boto3

clip, n, queue = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s3, sqs = boto3.client("s3"), boto3.client("sqs")
body = open(clip, "rb").read()
for i in range(n):
    s3.put_object(Bucket="vod-raw", Key="uploads/clip-%05d.mp4" % i, Body=body)
deadline = time.time() + 120
while True:
    attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    # S3's test event arrives besides the uploads.
    if int(attrs["Attributes"]["ApproximateNumberOfMessages"]) >= n + 1:
        break
    if time.time() > deadline:
        sys.exit("the notifications did not all arrive")
    time.sleep(0.2)
