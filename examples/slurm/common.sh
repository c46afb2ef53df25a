# Shared by prolog.sh and epilog.sh (sourced). Settings, all optional:
#   CARBONMON_BIN         the carbonmon command (default: carbonmon on PATH)
#   CARBONMON_AGENT_ADDR  the node's agent (default 127.0.0.1:50051)
#   CARBONMON_SLURM_DIR   where results are written (default /var/log/carbonmon/slurm): one
#                         slurm-<job id>.json per job (canonical protobuf JSON of the Measurement) and
#                         emissions.csv (a row per job), for an admin to collect with the node's logs
# A hook that fails drains the node in Slurm, so every failure here is a warning on stderr (which slurmd
# logs) and exit 0: measuring never blocks a job.

carbonmon_bin=${CARBONMON_BIN:-carbonmon}
carbonmon_agent=${CARBONMON_AGENT_ADDR:-127.0.0.1:50051}
carbonmon_dir=${CARBONMON_SLURM_DIR:-/var/log/carbonmon/slurm}

warn() { echo "carbonmon slurm $(basename "$0"): $*" >&2; }

# The job's window key; no job id means this is not running as a Slurm hook.
if [ -z "${SLURM_JOB_ID:-}" ]; then
  warn "SLURM_JOB_ID is not set: not a Slurm prolog/epilog, nothing to do"
  exit 0
fi
carbonmon_key="slurm-${SLURM_JOB_ID}"

# The GPU indices in the node's (the agent's) numbering: SLURM_JOB_GPUS in the prolog/epilog environment,
# else CUDA_VISIBLE_DEVICES when it holds indices; empty: every GPU of the node.
job_gpus() {
  local gpus=${SLURM_JOB_GPUS:-${CUDA_VISIBLE_DEVICES:-}}
  if [[ "$gpus" =~ ^[0-9]+(,[0-9]+)*$ ]]; then echo "$gpus"; fi
}

# carbonmon with the node's GPU numbering: CUDA_VISIBLE_DEVICES (if Slurm set one for the hook) must not
# renumber the indices the hook passes.
cm() { env -u CUDA_VISIBLE_DEVICES "$carbonmon_bin" "$@" --agent "$carbonmon_agent"; }
