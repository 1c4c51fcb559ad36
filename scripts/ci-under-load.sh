#!/usr/bin/env bash
# The CI run on a busy machine: `bash .ci/run` while CPU hogs (`yes >/dev/null`, HOGS
# of them, default 2: one per core of a 2-core machine) keep the cores busy, to show
# that the tests hold whatever the machine's speed. The hogs are started here, each
# bounded by `timeout` (HOG_SECONDS, default 5400), and exactly their PIDs are killed
# on exit: after a pass, a failure or an interrupt. Prints the elapsed time.
#   bash scripts/ci-under-load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
hogs=${HOGS:-2}
hog_seconds=${HOG_SECONDS:-5400}

pids=()
ci=""
start=$(date +%s)
finish() {
    local status=$? pid
    if [ -n "$ci" ]; then
        # Interrupted: end the CI run too (its own process group, started below).
        kill -TERM -- "-$ci" 2>/dev/null || true
        wait "$ci" 2>/dev/null || true
    fi
    for pid in ${pids[@]+"${pids[@]}"}; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in ${pids[@]+"${pids[@]}"}; do
        wait "$pid" 2>/dev/null || true
    done
    local elapsed=$(($(date +%s) - start))
    printf 'ci-under-load: exit %d after %dm%02ds (%ds) under %d CPU hogs\n' \
        "$status" $((elapsed / 60)) $((elapsed % 60)) "$elapsed" "$hogs"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for _ in $(seq "$hogs"); do
    # `timeout` passes the kill on to its `yes`, and ends it anyway after HOG_SECONDS.
    timeout "$hog_seconds" yes >/dev/null &
    pids+=("$!")
done
echo "ci-under-load: $hogs CPU hogs (PIDs ${pids[*]}) for at most ${hog_seconds}s"

# In the background, so that an interrupt is handled at once (bash runs traps only
# between commands, and `wait` is one), and in a process group of its own (setsid:
# its PID is the group's ID) so that an interrupt can end all of it.
setsid bash .ci/run &
ci=$!
status=0
wait "$ci" || status=$?
ci=""
exit "$status"
