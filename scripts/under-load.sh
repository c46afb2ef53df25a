#!/usr/bin/env bash
# Runs a command with every core kept busy: one busy-loop process per core, at the command's own priority,
# all killed when the command ends, fails or is interrupted. Shows whether a test suite depends on an idle
# machine (the tests must pass with the CPU busy: no wall-clock assertions, no sleeps as synchronisation).
#
#   scripts/under-load.sh npm test
#   scripts/under-load.sh npx ava test/server/agent/sampler.test.ts
#   UNDER_LOAD_PROCS=4 scripts/under-load.sh npm test     # another number of busy loops (default: one per core)
#
# Exits with the command's exit status.
set -uo pipefail

if [ $# -eq 0 ]; then
  echo "usage: $0 COMMAND [ARGS...]" >&2
  exit 2
fi

procs=${UNDER_LOAD_PROCS:-$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)}
pids=()
stop_load() {
  [ ${#pids[@]} -eq 0 ] && return
  kill "${pids[@]}" 2>/dev/null
  wait "${pids[@]}" 2>/dev/null
  pids=()
}
trap stop_load EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for _ in $(seq "$procs"); do
  nice -n 0 sh -c 'while :; do :; done' &
  pids+=($!)
done
echo "under-load: ${procs} busy loops running (pids ${pids[*]}): $*" >&2

started=$(date +%s)
"$@"
status=$?
echo "under-load: exit ${status} after $(($(date +%s) - started)) s with ${procs} busy loops" >&2
exit "$status"
