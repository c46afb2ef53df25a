#!/usr/bin/env bash
# Slurm Prolog (slurm.conf: Prolog=/path/to/prolog.sh, runs as root on each allocated node before the job):
# begins the carbonmon window slurm-$SLURM_JOB_ID on this node's agent, over the job's GPUs, labelled with
# the job's id, user, account and partition. epilog.sh ends it. See common.sh for the settings.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

args=(window begin "$carbonmon_key" --label "slurm_job_id=${SLURM_JOB_ID}")
gpus=$(job_gpus)
[ -n "$gpus" ] && args+=(--gpus "$gpus")
for var in SLURM_JOB_USER SLURM_JOB_ACCOUNT SLURM_JOB_PARTITION SLURM_JOB_NAME SLURM_CLUSTER_NAME; do
  value=${!var:-}
  label=$(echo "${var#SLURM_}" | tr '[:upper:]' '[:lower:]')
  [ -n "$value" ] && args+=(--label "${label}=${value:0:256}")
done

if ! out=$(cm "${args[@]}" 2>&1); then
  # A requeued job reuses its id: a window left open by a run whose epilog never came is replaced.
  if [[ "$out" == *ALREADY_EXISTS* ]] && cm window cancel "$carbonmon_key" >/dev/null 2>&1 && out=$(cm "${args[@]}" 2>&1); then
    warn "replaced a window $carbonmon_key left open by an earlier run of the job"
  else
    warn "could not begin window $carbonmon_key: $out"
    exit 0
  fi
fi
echo "$out" >&2
exit 0
