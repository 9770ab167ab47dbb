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
#   deploy/deploy.sh --print-image-tag   # the tag it would build and deploy, and nothing else
#
# Environment (all optional):
#   STACK_NAME         prefix of every resource and stack name (vod)
#   CPU_ARCHITECTURE   X86_64 (default) or ARM64: the tasks' CPU, and the images are built for it
#   IMAGE_TAG          image tag to deploy (the current commit; see image_tag below)
#   TRANSCODER_IMAGE, CONSUMER_IMAGE
#                      images to deploy as they are, with no build or push
#   VPC_ID, SUBNET_IDS use an existing VPC and its subnets (comma-separated) instead of a new VPC
#   ASSIGN_PUBLIC_IP   ENABLED (public subnets, no NAT) or DISABLED (private subnets)
#   WARM_MIN, WARM_MAX the warm pool's scaling bounds (0 and 10)
#   WARM_ON_DEMAND_BASE
#                      warm tasks on on-demand FARGATE before Spot takes the rest (1)
#   DISPATCH_MODE      grpc|ecs|auto (auto)
#   OUTPUT_ACCESS      cloudfront (default) or private
#   ALARM_EMAIL        an address subscribed to the alarm topic
#   GRPC_AUTH          token (default: a bearer token from Secrets Manager) or none
#   TLS_SECRET_ARN     a secret with the warm pool's TLS certificate (docs/operations.md, TLS)
set -euo pipefail
cd "$(dirname "$0")/.."

# The tag: the commit, and when the work tree differs from it (changed, staged or untracked
# files: what `docker build` would copy), `-dirty-` and the UTC time, so what runs is what
# was on disk and a later build never reuses the tag. ARM64 images add `-arm64`: the ECR
# repositories are IMMUTABLE and the "already pushed" check below goes by tag, so one commit
# built for both CPUs needs two tags. Never `latest`.
image_tag() {
  local tag
  if [ -n "${IMAGE_TAG:-}" ]; then
    tag="$IMAGE_TAG"
  else
    tag=$(git rev-parse --short=12 HEAD 2>/dev/null) \
      || { echo "deploy: not a git work tree: set IMAGE_TAG" >&2; return 1; }
    if [ -n "$(git status --porcelain 2>/dev/null)" ]; then
      tag="$tag-dirty-$(date -u +%Y%m%dT%H%M%SZ)"
    fi
    [ "$architecture" = ARM64 ] && tag="$tag-arm64"
  fi
  if [ "$tag" = latest ]; then
    echo "deploy: 'latest' names no particular build: give IMAGE_TAG a commit or a version" >&2
    return 1
  fi
  echo "$tag"
}

architecture="${CPU_ARCHITECTURE:-X86_64}"
case "$architecture" in
  X86_64) platform=linux/amd64 ;;
  ARM64) platform=linux/arm64 ;;
  *) echo "deploy: CPU_ARCHITECTURE is X86_64 or ARM64, not '$architecture'" >&2; exit 1 ;;
esac
if [ "${1:-}" = --print-image-tag ]; then
  image_tag
  exit 0
fi

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
echo "deploying stack '$name' to account $account in $region ($architecture)"

echo "== images stack ($name-images)"
deploy_stack --stack-name "$name-images" --template-file deploy/images.yaml \
  --parameter-overrides "Name=$name"

registry="$account.dkr.ecr.$region.amazonaws.com"
if [ -n "${TRANSCODER_IMAGE:-}" ] && [ -n "${CONSUMER_IMAGE:-}" ]; then
  transcoder_image="$TRANSCODER_IMAGE"
  consumer_image="$CONSUMER_IMAGE"
  echo "== images given: $transcoder_image, $consumer_image"
else
  tag=$(image_tag)
  transcoder_image="$registry/$name/transcoder:$tag"
  consumer_image="$registry/$name/consumer:$tag"
  # A tag once pushed is never pushed again (the repositories refuse it): each image is built
  # only when its tag is missing.
  logged_in=""
  for component in transcoder consumer; do
    image="$registry/$name/$component:$tag"
    if aws ecr describe-images --repository-name "$name/$component" --image-ids "imageTag=$tag" >/dev/null 2>&1; then
      echo "== $image already pushed"
      continue
    fi
    command -v docker >/dev/null || { echo "deploy: docker is needed to build the images (or set TRANSCODER_IMAGE and CONSUMER_IMAGE)" >&2; exit 1; }
    if [ -z "$logged_in" ]; then
      aws ecr get-login-password | docker login --username AWS --password-stdin "$registry"
      logged_in=yes
    fi
    echo "== building and pushing $image ($platform)"
    # For the tasks' CPU, whatever this machine's: an Apple Silicon laptop builds amd64 images
    # for X86_64 tasks (emulated, so slower).
    docker build --platform "$platform" -f "docker/$component.Dockerfile" -t "$image" .
    docker push "$image"
  done
fi

params=("Name=$name" "TranscoderImage=$transcoder_image" "ConsumerImage=$consumer_image"
        "CpuArchitecture=$architecture")
[ -n "${VPC_ID:-}" ] && params+=("VpcId=$VPC_ID")
[ -n "${SUBNET_IDS:-}" ] && params+=("SubnetIds=$SUBNET_IDS")
[ -n "${ASSIGN_PUBLIC_IP:-}" ] && params+=("AssignPublicIp=$ASSIGN_PUBLIC_IP")
[ -n "${WARM_MIN:-}" ] && params+=("WarmMinimum=$WARM_MIN")
[ -n "${WARM_MAX:-}" ] && params+=("WarmMaximum=$WARM_MAX")
[ -n "${WARM_ON_DEMAND_BASE:-}" ] && params+=("WarmOnDemandBase=$WARM_ON_DEMAND_BASE")
[ -n "${DISPATCH_MODE:-}" ] && params+=("DispatchMode=$DISPATCH_MODE")
[ -n "${OUTPUT_ACCESS:-}" ] && params+=("OutputAccess=$OUTPUT_ACCESS")
[ -n "${ALARM_EMAIL:-}" ] && params+=("AlarmEmail=$ALARM_EMAIL")
[ -n "${GRPC_AUTH:-}" ] && params+=("GrpcAuth=$GRPC_AUTH")
[ -n "${TLS_SECRET_ARN:-}" ] && params+=("TlsSecretArn=$TLS_SECRET_ARN")

echo "== main stack ($name)"
deploy_stack --stack-name "$name" --template-file deploy/stack.yaml \
  --capabilities CAPABILITY_NAMED_IAM --parameter-overrides "${params[@]}"

echo
echo "deployed. Upload a video with:"
echo "  aws s3 cp VIDEO s3://$name-raw-$account-$region/uploads/VIDEO"
echo "and find its HLS under s3://$name-output-$account-$region/hls/uploads/. Alarms go to the"
echo "topic AlarmTopicArn, the dashboard is DashboardUrl (stack outputs:"
echo "  aws cloudformation describe-stacks --stack-name $name --query 'Stacks[0].Outputs')"
