#!/usr/bin/env bash
# Train with one process per GPU (torchrun; per-GPU batch size as in the config):
#
#   tools/dist_train.sh CONFIG NGPUS [detbox train options...]
#
# Environment:
#   PORT         master port; default: a port that is free on this machine right now, so two
#                jobs on one machine never share it. Set it (the same on every machine) when
#                training on several machines.
#   NNODES, NODE_RANK, MASTER_ADDR
#                several machines: run this same command on each, with NODE_RANK 0..NNODES-1
#                and MASTER_ADDR the address of the NODE_RANK=0 machine (default: 1 machine).
#   PYTHON       the interpreter (default: python3).
# Without GPUs the processes train on the CPU (gloo); asking for more processes than this
# machine has GPUs is an error that names how many there are.
set -euo pipefail

usage="usage: $0 CONFIG NGPUS [detbox train options...]"
if [ $# -lt 2 ]; then
    echo "$usage" >&2
    exit 2
fi
CONFIG=$1
NGPUS=$2
shift 2
case $NGPUS in
    '' | *[!0-9]* | 0) echo "$0: NGPUS must be a positive integer, got '$NGPUS'. $usage" >&2; exit 2 ;;
esac
PYTHON=${PYTHON:-python3}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
if [ -z "${PORT:-}" ]; then
    if [ "$NNODES" -gt 1 ]; then
        echo "$0: set PORT (the same on every machine) when NNODES > 1" >&2
        exit 2
    fi
    PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')
fi
echo "dist_train: $NGPUS process(es) per machine on $NNODES machine(s), master $MASTER_ADDR:$PORT"

exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --nproc_per_node="$NGPUS" \
    --master_addr="$MASTER_ADDR" --master_port="$PORT" \
    -m detbox.cli.main train "$CONFIG" --launcher torchrun "$@"
