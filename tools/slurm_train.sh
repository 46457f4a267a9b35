#!/usr/bin/env bash
# Train on a SLURM cluster, one task per GPU, started by srun:
#
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [GPUS] [detbox train options...]
#
# GPUS (default 8, or $GPUS) is the total over all nodes, GPUS_PER_NODE of them per node
# (default: min(GPUS, 8)). Environment:
#   PORT           master port; default: derived from the SLURM job id, so two jobs that
#                  share a node use different ports.
#   CPUS_PER_TASK  CPU cores per task, for data loading workers (default 5).
#   SRUN_ARGS      more srun options, e.g. "--quotatype=auto --time=2-00:00:00".
#   PYTHON         the interpreter (default: python3).
set -euo pipefail

usage="usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [GPUS] [detbox train options...]"
if [ $# -lt 4 ]; then
    echo "$usage" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
GPUS=${GPUS:-8}
case ${1:-} in
    '' | -* | *[!0-9]*) ;;
    *) GPUS=$1; shift ;;
esac
case $GPUS in
    '' | *[!0-9]* | 0) echo "$0: GPUS must be a positive integer, got '$GPUS'. $usage" >&2; exit 2 ;;
esac
GPUS_PER_NODE=${GPUS_PER_NODE:-$(( GPUS < 8 ? GPUS : 8 ))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-}
PYTHON=${PYTHON:-python3}
if [ -n "${PORT:-}" ]; then
    export MASTER_PORT=$PORT
fi

# shellcheck disable=SC2086  # SRUN_ARGS holds several options
srun -p "$PARTITION" --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 $SRUN_ARGS \
    "$PYTHON" -u -m detbox.cli.main train "$CONFIG" --work-dir "$WORK_DIR" --launcher slurm "$@"
