#!/usr/bin/env bash
# deploy/destroy.sh: removes what deploy/deploy.sh made, buckets' contents included, and checks
# that nothing of it is left.
#
#   deploy/destroy.sh            # asks for the stack name on a terminal
#   deploy/destroy.sh --yes      # no question (scripts)
#
# STACK_NAME as for deploy.sh (vod). The order matters:
#   1. the warm pool's scaling is pinned to 0 and both services are scaled to 0, so nothing
#      starts new work or writes to the buckets;
#   2. every task still running in the cluster is stopped, one-shot tasks included (the
#      consumer starts those outside any service, so CloudFormation does not know them), and
#      waited for: a task's network interface holds its subnet and security group;
#   3. the buckets are emptied (CloudFormation cannot delete a bucket that holds objects);
#   4. the stacks are deleted;
#   5. whatever a stack listed and is still there is removed by its id, then looked for again.
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

stack_exists() {
  local status
  status=$(aws cloudformation describe-stacks --stack-name "$1" --query 'Stacks[0].StackStatus' \
    --output text 2>/dev/null) || return 1
  [ "$status" != DELETE_COMPLETE ]
}

# What each stack made, as "type id" lines, read before anything is deleted: afterwards the
# stack may be gone and its list with it.
resources_file=$(mktemp)
trap 'rm -f "$resources_file"' EXIT
for stack in "$name" "$name-images"; do
  if stack_exists "$stack"; then
    aws cloudformation list-stack-resources --stack-name "$stack" \
      --query 'StackResourceSummaries[?PhysicalResourceId].[ResourceType, PhysicalResourceId]' \
      --output text >>"$resources_file"
  fi
done
ids_of() { awk -v t="$1" '$1 == t {print $2}' "$resources_file"; }

# --- 1 and 2: nothing runs -----------------------------------------------------------------
cluster=$(ids_of AWS::ECS::Cluster | head -n 1)
if [ -n "$cluster" ] && [ "$(aws ecs describe-clusters --clusters "$cluster" \
      --query 'clusters[0].status' --output text 2>/dev/null)" = ACTIVE ]; then
  # Scaling could start warm tasks again while the rest goes: pin it at 0 first.
  warm="service/$cluster/$name-transcoder"
  target=$(aws application-autoscaling describe-scalable-targets --service-namespace ecs \
    --resource-ids "$warm" --query 'ScalableTargets[0].ResourceId' --output text 2>/dev/null || true)
  if [ "$target" = "$warm" ]; then
    echo "== pinning the warm pool's scaling at 0"
    aws application-autoscaling register-scalable-target --service-namespace ecs \
      --scalable-dimension ecs:service:DesiredCount --resource-id "$warm" \
      --min-capacity 0 --max-capacity 0 >/dev/null
  fi
  for service in $(aws ecs list-services --cluster "$cluster" --query 'serviceArns[]' --output text); do
    echo "== scaling ${service##*/} to 0"
    aws ecs update-service --cluster "$cluster" --service "$service" --desired-count 0 >/dev/null
  done
  # Services' tasks and the consumer's one-shot tasks alike. Each gets SIGTERM and its
  # stopTimeout: a job hands its message back, which the queue's deletion then drops.
  tasks=$(aws ecs list-tasks --cluster "$cluster" --desired-status RUNNING --query 'taskArns[]' --output text)
  if [ -n "$tasks" ]; then
    for task in $tasks; do
      aws ecs stop-task --cluster "$cluster" --task "$task" --reason "deploy/destroy.sh" >/dev/null
    done
    echo "== waiting for $(wc -w <<<"$tasks") tasks to stop"
    # The waiter takes at most 100 tasks a call.
    xargs -n 100 <<<"$tasks" | while read -r batch; do
      # shellcheck disable=SC2086 # one word per task
      aws ecs wait tasks-stopped --cluster "$cluster" --tasks $batch
    done
  fi
fi

# --- 3: the buckets ------------------------------------------------------------------------
for bucket in "$name-raw-$account-$region" "$name-output-$account-$region"; do
  if aws s3api head-bucket --bucket "$bucket" >/dev/null 2>&1; then
    echo "== emptying s3://$bucket"
    aws s3 rm "s3://$bucket" --recursive --only-show-errors
  fi
done

# --- what a stack delete may leave, for 4 and 5 ---------------------------------------------
# CloudFormation normally deletes all of it. It may not: a delete ends DELETE_FAILED when a
# network interface outlives its task for a while, or when something it does not know was
# put in the stack's VPC (GuardDuty's runtime monitoring adds an endpoint and a security
# group to every VPC with Fargate tasks), and an emulator may skip types (moto 5.2.5 drops
# the stack but leaves route tables, gateways, endpoints, ECS clusters, services and task
# definitions, so the VPC delete fails with DependencyViolation). Each resource below is the
# stack's own, by the id the stack recorded: never the VPC or subnets you passed in.
gone() { ! "$@" >/dev/null 2>&1; }
# Runs a delete; one that fails now (a network interface not yet released) is tried again on
# the next pass, and the last check below names whatever stays.
try() { "$@" >/dev/null || echo "   (not yet: ${*:2:2})"; }
remove_leftovers() {
  local id vpc group
  for id in $(ids_of AWS::ECS::Service); do
    if [ "$(aws ecs describe-services --cluster "$cluster" --services "$id" \
          --query 'services[0].status' --output text 2>/dev/null)" = ACTIVE ]; then
      echo "   service ${id##*/}"
      try aws ecs delete-service --cluster "$cluster" --service "$id" --force
    fi
  done
  for id in $(ids_of AWS::ECS::TaskDefinition); do
    if [ "$(aws ecs describe-task-definition --task-definition "$id" \
          --query 'taskDefinition.status' --output text 2>/dev/null)" = ACTIVE ]; then
      echo "   task definition ${id##*/}"
      try aws ecs deregister-task-definition --task-definition "$id"
    fi
  done
  for id in $(ids_of AWS::ECS::Cluster); do
    if [ "$(aws ecs describe-clusters --clusters "$id" --query 'clusters[0].status' \
          --output text 2>/dev/null)" = ACTIVE ]; then
      echo "   cluster $id"
      try aws ecs delete-cluster --cluster "$id"
    fi
  done
  for vpc in $(ids_of AWS::EC2::VPC); do
    for id in $(aws ec2 describe-vpc-endpoints --filters "Name=vpc-id,Values=$vpc" \
          --query 'VpcEndpoints[].VpcEndpointId' --output text); do
      echo "   endpoint $id"
      try aws ec2 delete-vpc-endpoints --vpc-endpoint-ids "$id"
    done
  done
  # Security groups name each other in their rules: drop every rule first.
  for group in $(ids_of AWS::EC2::SecurityGroup); do
    gone aws ec2 describe-security-groups --group-ids "$group" && continue
    for id in $(aws ec2 describe-security-group-rules --filters "Name=group-id,Values=$group" \
          --query 'SecurityGroupRules[?!IsEgress].SecurityGroupRuleId' --output text); do
      try aws ec2 revoke-security-group-ingress --group-id "$group" --security-group-rule-ids "$id"
    done
    for id in $(aws ec2 describe-security-group-rules --filters "Name=group-id,Values=$group" \
          --query 'SecurityGroupRules[?IsEgress].SecurityGroupRuleId' --output text); do
      try aws ec2 revoke-security-group-egress --group-id "$group" --security-group-rule-ids "$id"
    done
  done
  for group in $(ids_of AWS::EC2::SecurityGroup); do
    gone aws ec2 describe-security-groups --group-ids "$group" && continue
    echo "   security group $group"
    try aws ec2 delete-security-group --group-id "$group"
  done
  for id in $(ids_of AWS::EC2::InternetGateway); do
    gone aws ec2 describe-internet-gateways --internet-gateway-ids "$id" && continue
    for vpc in $(aws ec2 describe-internet-gateways --internet-gateway-ids "$id" \
          --query 'InternetGateways[0].Attachments[].VpcId' --output text); do
      try aws ec2 detach-internet-gateway --internet-gateway-id "$id" --vpc-id "$vpc"
    done
    echo "   internet gateway $id"
    try aws ec2 delete-internet-gateway --internet-gateway-id "$id"
  done
  for id in $(ids_of AWS::EC2::Subnet); do
    gone aws ec2 describe-subnets --subnet-ids "$id" && continue
    echo "   subnet $id"
    try aws ec2 delete-subnet --subnet-id "$id"
  done
  for id in $(ids_of AWS::EC2::RouteTable); do
    gone aws ec2 describe-route-tables --route-table-ids "$id" && continue
    for association in $(aws ec2 describe-route-tables --route-table-ids "$id" \
          --query 'RouteTables[0].Associations[?!Main].RouteTableAssociationId' --output text); do
      try aws ec2 disassociate-route-table --association-id "$association"
    done
    echo "   route table $id"
    try aws ec2 delete-route-table --route-table-id "$id"
  done
  for id in $(ids_of AWS::EC2::VPC); do
    gone aws ec2 describe-vpcs --vpc-ids "$id" && continue
    echo "   vpc $id"
    try aws ec2 delete-vpc --vpc-id "$id"
  done
}

# Whatever of the stacks' resources that can outlive a delete is still there, one per line
# (filters rather than ids: a filter on an id that is gone finds nothing instead of failing).
leftovers() {
  local id ids
  ids=$(ids_of AWS::ECS::Cluster | paste -sd' ')
  # shellcheck disable=SC2086 # one word per cluster
  [ -n "$ids" ] && aws ecs describe-clusters --clusters $ids \
    --query "clusters[?status=='ACTIVE'].['cluster', clusterName]" --output text
  for id in $(ids_of AWS::ECS::TaskDefinition); do
    [ "$(aws ecs describe-task-definition --task-definition "$id" --query 'taskDefinition.status' --output text 2>/dev/null)" = ACTIVE ] \
      && echo "task definition $id"
  done
  found() {  # found WHAT COMMAND FILTER QUERY TYPE
    ids=$(ids_of "$5" | paste -sd,)
    [ -n "$ids" ] && aws ec2 "$2" --filters "Name=$3,Values=$ids" --query "$4" --output text | tr '\t' '\n' \
      | grep . | sed "s/^/$1 /"
  }
  found vpc describe-vpcs vpc-id 'Vpcs[].VpcId' AWS::EC2::VPC
  found subnet describe-subnets subnet-id 'Subnets[].SubnetId' AWS::EC2::Subnet
  found "security group" describe-security-groups group-id 'SecurityGroups[].GroupId' AWS::EC2::SecurityGroup
  found "internet gateway" describe-internet-gateways internet-gateway-id 'InternetGateways[].InternetGatewayId' AWS::EC2::InternetGateway
  found "route table" describe-route-tables route-table-id 'RouteTables[].RouteTableId' AWS::EC2::RouteTable
  for id in $(ids_of AWS::S3::Bucket); do gone aws s3api head-bucket --bucket "$id" || echo "bucket $id"; done
  for id in $(ids_of AWS::IAM::Role); do gone aws iam get-role --role-name "$id" || echo "role $id"; done
  for stack in "$name" "$name-images"; do stack_exists "$stack" && echo "stack $stack"; done
  return 0
}

# --- 4 and 5: the stacks, then whatever they left -------------------------------------------
delete_stack() {
  stack_exists "$1" || return 0
  echo "== deleting stack $1"
  aws cloudformation delete-stack --stack-name "$1" && aws cloudformation wait stack-delete-complete --stack-name "$1"
}
for stack in "$name" "$name-images"; do
  delete_stack "$stack" || echo "== stack $stack was not deleted whole"
done
# A few passes: on AWS a stopped task's network interface can hold its subnet and security
# group for a minute or two.
for pass in 1 2 3 4; do
  left=$(leftovers)
  [ -z "$left" ] && break
  [ "$pass" -gt 1 ] && sleep 30
  echo "== removing what the stacks left"
  remove_leftovers
  # A stack in DELETE_FAILED goes once what blocked it is gone.
  for stack in "$name" "$name-images"; do delete_stack "$stack" || true; done
done
left=$(leftovers)
if [ -n "$left" ]; then
  echo "destroy: still there:" >&2
  echo "$left" >&2
  exit 1
fi
echo "removed."
