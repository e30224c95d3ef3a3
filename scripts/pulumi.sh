#!/usr/bin/env bash
# Run a Pulumi verb on one stack with safe defaults:
#   scripts/pulumi.sh <up|preview|refresh|destroy> <stack> [more pulumi flags]
# State: Pulumi's file backend in ./.pulumi-state unless PULUMI_BACKEND_URL is set.
# Secrets: the passphrase provider (PULUMI_CONFIG_PASSPHRASE[_FILE]) unless
# PULUMI_SECRETS_PROVIDER names another (e.g. awskms://...). No Pulumi Cloud account needed.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "error: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is not installed ($2)"; }

[ $# -ge 2 ] || die "usage: scripts/pulumi.sh <up|preview|refresh|destroy> <stack> [pulumi flags]"
verb=$1 stack=$2
shift 2
case "$verb" in up|preview|refresh|destroy) ;; *) die "unknown verb '$verb'";; esac
stacks=$(ls Pulumi.*.yaml | sed -E 's/Pulumi\.(.*)\.yaml/\1/' | tr '\n' ' ')
[ -f "Pulumi.$stack.yaml" ] || die "no stack file Pulumi.$stack.yaml (stacks: $stacks)"

need pulumi "install the Pulumi CLI: https://www.pulumi.com/docs/iac/download-install/"
target=$(sed -nE 's/^[[:space:]]*airflow-platform:target:[[:space:]]*([a-z]+).*/\1/p' "Pulumi.$stack.yaml")
case "$target" in
  minikube)
    need minikube "install minikube: https://minikube.sigs.k8s.io/docs/start/"
    need docker "the image is built with minikube's Docker daemon; install the docker CLI"
    minikube status >/dev/null 2>&1 || die "minikube is not running: minikube start --cpus 4 --memory 8g"
    # Build the Airflow image straight into minikube's Docker daemon (no registry push).
    eval "$(minikube docker-env --shell bash)"
    ;;
  eks)
    need aws "install the AWS CLI and sign in (aws sso login / AWS_PROFILE)"
    aws sts get-caller-identity >/dev/null 2>&1 || die "no AWS credentials: aws sso login or set AWS_PROFILE"
    need docker "the image is built locally and pushed to ECR; install Docker"
    ;;
  *) die "Pulumi.$stack.yaml: airflow-platform:target must be minikube or eks" ;;
esac

export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$PWD/.pulumi-state}"
export PULUMI_SKIP_UPDATE_CHECK=true
if [[ "$PULUMI_BACKEND_URL" == file://* ]]; then mkdir -p "${PULUMI_BACKEND_URL#file://}"; fi
provider="${PULUMI_SECRETS_PROVIDER:-passphrase}"
if [ "$provider" = passphrase ] && [ -z "${PULUMI_CONFIG_PASSPHRASE+x}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  [ "$stack" = local ] || die "set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE for stack $stack"
  # The local stack gets its own generated passphrase, kept beside the local state.
  mkdir -p .pulumi-state
  pass=.pulumi-state/local.passphrase
  [ -f "$pass" ] || (umask 077 && head -c 32 /dev/urandom | base64 > "$pass")
  export PULUMI_CONFIG_PASSPHRASE_FILE="$PWD/$pass"
fi

make --no-print-directory install >/dev/null
pulumi stack select "$stack" >/dev/null 2>&1 || pulumi stack init "$stack" --secrets-provider "$provider"
exec pulumi "$verb" --stack "$stack" "$@"
