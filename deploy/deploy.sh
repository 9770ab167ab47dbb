#!/usr/bin/env bash
# deploy/deploy.sh: deploys or updates the whole pipeline in the AWS account of the environment
# (the default credential chain and region; an emulator when AWS_ENDPOINT_URL is set). Running
# it twice changes nothing: CloudFormation compares the templates and says "No changes".
#
#   deploy/deploy.sh
#
# Steps: the images stack (deploy/images.yaml: two ECR repositories), the two images built and
# pushed (skipped when the tag is already there), then the main stack (deploy/stack.yaml).
#
# Environment (all optional):
#   STACK_NAME         prefix of every resource and stack name (vod)
#   IMAGE_TAG          image tag to deploy (the current commit)
#   TRANSCODER_IMAGE, CONSUMER_IMAGE
#                      images to deploy as they are, with no build or push
#   VPC_ID, SUBNET_IDS use an existing VPC and its subnets (comma-separated) instead of a new VPC
#   ASSIGN_PUBLIC_IP   ENABLED (public subnets, no NAT) or DISABLED (private subnets)
#   WARM_TRANSCODERS   warm transcoder tasks (2); DISPATCH_MODE grpc|ecs|auto (auto)
#   OUTPUT_ACCESS      cloudfront (default) or private
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
ensure_tools
aws() { "$TOOLS_BIN/aws" "$@"; }

# `aws cloudformation deploy` that says so when nothing changed. AWS answers an unchanged
# template with an empty change set, which --no-fail-on-empty-changeset absorbs; some
# emulators refuse to create the change set instead ("No updates are to be performed"),
# which means the same.
deploy_stack() {
  local out status=0
  out=$(aws cloudformation deploy --no-fail-on-empty-changeset "$@" 2>&1) || status=$?
  if [ "$status" -ne 0 ] && grep -q "No updates are to be performed" <<<"$out"; then
    echo "No changes to deploy. Stack is up to date"
    return 0
  fi
  echo "$out"
  return "$status"
}

name="${STACK_NAME:-vod}"
region="${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region 2>/dev/null || true)}}"
[ -n "$region" ] || { echo "deploy: set AWS_REGION (or a region in your AWS profile)" >&2; exit 1; }
export AWS_DEFAULT_REGION="$region" AWS_REGION="$region"
account=$(aws sts get-caller-identity --query Account --output text)
tag="${IMAGE_TAG:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo latest)}"
echo "deploying stack '$name' to account $account in $region"

echo "== images stack ($name-images)"
deploy_stack --stack-name "$name-images" --template-file deploy/images.yaml \
  --parameter-overrides "Name=$name"

registry="$account.dkr.ecr.$region.amazonaws.com"
image_exists() { aws ecr describe-images --repository-name "$1" --image-ids "imageTag=$tag" >/dev/null 2>&1; }
if [ -n "${TRANSCODER_IMAGE:-}" ] && [ -n "${CONSUMER_IMAGE:-}" ]; then
  transcoder_image="$TRANSCODER_IMAGE"
  consumer_image="$CONSUMER_IMAGE"
  echo "== images given: $transcoder_image, $consumer_image"
else
  transcoder_image="$registry/$name/transcoder:$tag"
  consumer_image="$registry/$name/consumer:$tag"
  if image_exists "$name/transcoder" && image_exists "$name/consumer"; then
    echo "== images for $tag already pushed"
  else
    command -v docker >/dev/null || { echo "deploy: docker is needed to build the images (or set TRANSCODER_IMAGE and CONSUMER_IMAGE)" >&2; exit 1; }
    echo "== building and pushing the images ($tag)"
    aws ecr get-login-password | docker login --username AWS --password-stdin "$registry"
    docker build -f docker/transcoder.Dockerfile -t "$transcoder_image" .
    docker build -f docker/consumer.Dockerfile -t "$consumer_image" .
    docker push "$transcoder_image"
    docker push "$consumer_image"
  fi
fi

params=("Name=$name" "TranscoderImage=$transcoder_image" "ConsumerImage=$consumer_image")
[ -n "${VPC_ID:-}" ] && params+=("VpcId=$VPC_ID")
[ -n "${SUBNET_IDS:-}" ] && params+=("SubnetIds=$SUBNET_IDS")
[ -n "${ASSIGN_PUBLIC_IP:-}" ] && params+=("AssignPublicIp=$ASSIGN_PUBLIC_IP")
[ -n "${WARM_TRANSCODERS:-}" ] && params+=("WarmTranscoders=$WARM_TRANSCODERS")
[ -n "${DISPATCH_MODE:-}" ] && params+=("DispatchMode=$DISPATCH_MODE")
[ -n "${OUTPUT_ACCESS:-}" ] && params+=("OutputAccess=$OUTPUT_ACCESS")

echo "== main stack ($name)"
deploy_stack --stack-name "$name" --template-file deploy/stack.yaml \
  --capabilities CAPABILITY_NAMED_IAM --parameter-overrides "${params[@]}"

echo
echo "deployed. Upload a video with:"
echo "  aws s3 cp VIDEO s3://$name-raw-$account-$region/uploads/VIDEO"
echo "and find its HLS under s3://$name-output-$account-$region/hls/uploads/ (stack outputs:"
echo "  aws cloudformation describe-stacks --stack-name $name --query 'Stacks[0].Outputs')"
