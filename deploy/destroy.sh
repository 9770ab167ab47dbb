#!/usr/bin/env bash
# deploy/destroy.sh: removes what deploy/deploy.sh made, buckets' contents included.
#
#   deploy/destroy.sh            # asks for the stack name on a terminal
#   deploy/destroy.sh --yes      # no question (scripts)
#
# STACK_NAME as for deploy.sh (vod).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
ensure_tools
aws() { "$TOOLS_BIN/aws" "$@"; }

name="${STACK_NAME:-vod}"
region="${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region 2>/dev/null || true)}}"
[ -n "$region" ] || { echo "destroy: set AWS_REGION (or a region in your AWS profile)" >&2; exit 1; }
export AWS_DEFAULT_REGION="$region" AWS_REGION="$region"
account=$(aws sts get-caller-identity --query Account --output text)

if [ "${1:-}" != "--yes" ]; then
  if [ ! -t 0 ]; then
    echo "destroy: pass --yes to remove stack '$name' without a question" >&2
    exit 1
  fi
  read -r -p "This deletes stack '$name', its buckets and everything in them. Type '$name' to go on: " answer
  [ "$answer" = "$name" ] || { echo "nothing deleted"; exit 1; }
fi

# CloudFormation cannot delete a bucket that holds objects.
for bucket in "$name-raw-$account-$region" "$name-output-$account-$region"; do
  if aws s3api head-bucket --bucket "$bucket" >/dev/null 2>&1; then
    echo "== emptying s3://$bucket"
    aws s3 rm "s3://$bucket" --recursive --only-show-errors
  fi
done
for stack in "$name" "$name-images"; do
  echo "== deleting stack $stack"
  aws cloudformation delete-stack --stack-name "$stack"
  aws cloudformation wait stack-delete-complete --stack-name "$stack"
done
echo "removed."
