#!/usr/bin/env bash
# The accelerator suite: one command for a lent GPU machine, <= 8 minutes on one GPU.
#
#   1. throughput against N, up to 65,536 envs (pgjax bench: env only, rollout, learn, train;
#      CartPole a2c, T=128);
#   2. the large-batch table at N >= 1024 (benchmarks/large_batch.py: the presets with only
#      num_envs changed; env steps, updates and wall seconds to the learning-table target);
#   3. scaling over the devices present (benchmarks/scaling.py; with one GPU, D = 1 only).
#
# Everything it prints is in RESULTS.md's format (markdown tables with machine and load);
# JSON copies go to $OUT (or benchmarks/device_results/) for the rows to be added by hand.
#
# Usage (from the repository root, after `make install` or with pgjax installed):
#   bash benchmarks/device_suite.sh            # the GPU sizes
#   bash benchmarks/device_suite.sh --small    # CPU smoke test of the same steps, small sizes
#
# Each step has its own time limit (timeout), so one slow step cannot eat the others' time;
# a step that fails or times out is reported and the suite goes on. Exit code: the number of
# steps that failed (0 when all ran).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
OUT=${OUT:-benchmarks/device_results}
mkdir -p "$OUT"

if [ "${1:-}" = "--small" ]; then
    THROUGHPUT_N=64,256
    THROUGHPUT_ARGS="--steps 16 --repeats 2 --matmul-size 512"
    LB_N=1024
    LB_CASES=cartpole_ppo
    LB_ARGS="--seeds 2 --budget-scale 0.1 --evals 4 --eval-episodes 4"
    SCALING_ARGS="--envs 256 --updates 2 --repeats 1 --algorithms a2c"
    LIMITS=(240 300 240)
else
    THROUGHPUT_N=1024,4096,16384,65536
    THROUGHPUT_ARGS="--repeats 3"
    LB_N=1024,4096,16384
    LB_CASES=cartpole_ppo,acrobot_ppo,pendulum_ppo,cartpole_a2c
    LB_ARGS="--seeds 4"
    SCALING_ARGS="--envs 65536 --algorithms a2c,ppo"
    LIMITS=(120 270 60)
fi

failed=0
step() {  # step NAME LIMIT_S COMMAND...
    local name=$1 limit=$2
    shift 2
    echo
    echo "## device suite: $name ($(date -u +%H:%M:%S) UTC, limit ${limit} s, load $(cut -d' ' -f1-3 /proc/loadavg))"
    local start=$SECONDS
    timeout --signal=INT --kill-after=15 "$limit" "$@"
    local code=$?
    echo "(step $name: exit $code, $((SECONDS - start)) s)"
    [ $code -eq 0 ] || failed=$((failed + 1))
}

if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
"$PY" -c "import jax; print('JAX', jax.__version__, jax.devices())"

step throughput "${LIMITS[0]}" "$PY" benchmarks/throughput.py --num-envs "$THROUGHPUT_N" \
    $THROUGHPUT_ARGS --json "$OUT/throughput.json"
step large-batch "${LIMITS[1]}" "$PY" benchmarks/large_batch.py --cases "$LB_CASES" \
    --num-envs "$LB_N" $LB_ARGS --json "$OUT/large_batch.json"
devices=$("$PY" -c "import jax; n = jax.device_count(); print(','.join(str(d) for d in (1, 2, 4, 8) if d <= n))")
step scaling "${LIMITS[2]}" "$PY" benchmarks/scaling.py --devices "$devices" $SCALING_ARGS \
    --json "$OUT/scaling.json"
echo
echo "device suite: $failed step(s) failed; JSON in $OUT/"
exit $failed
