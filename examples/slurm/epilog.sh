#!/usr/bin/env bash
# Slurm Epilog (slurm.conf: Epilog=/path/to/epilog.sh, runs as root on each node after the job): ends the
# window slurm-$SLURM_JOB_ID that prolog.sh began, writes the Measurement as canonical protobuf JSON to
# $CARBONMON_SLURM_DIR/slurm-<job id>.json (replaced if the job ran before: a requeue) and appends a row to
# $CARBONMON_SLURM_DIR/emissions.csv. See common.sh for the settings.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if ! mkdir -p "$carbonmon_dir"; then
  warn "cannot create $carbonmon_dir"
  exit 0
fi
json="$carbonmon_dir/${carbonmon_key}.json"
tmp="$json.tmp.$$"
if out=$(cm window end "$carbonmon_key" --json -o "$tmp" --csv "$carbonmon_dir/emissions.csv" 2>&1); then
  mv -f "$tmp" "$json"  # whole files only: a collector never reads half a result
else
  rm -f "$tmp"
  warn "could not end window $carbonmon_key: $out"
fi
exit 0
