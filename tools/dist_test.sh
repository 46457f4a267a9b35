#!/usr/bin/env bash
# Test a checkpoint with one process per GPU: each predicts its share of the images, the first
# gathers them, writes --out and evaluates (every image exactly once):
#
#   tools/dist_test.sh CONFIG CHECKPOINT NGPUS [detbox test options...]
#
# Environment: PORT (master port; default: a port free on this machine now), PYTHON
# (default: python3). See tools/dist_train.sh.
set -euo pipefail

usage="usage: $0 CONFIG CHECKPOINT NGPUS [detbox test options...]"
if [ $# -lt 3 ]; then
    echo "$usage" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NGPUS=$3
shift 3
case $NGPUS in
    '' | *[!0-9]* | 0) echo "$0: NGPUS must be a positive integer, got '$NGPUS'. $usage" >&2; exit 2 ;;
esac
PYTHON=${PYTHON:-python3}
if [ -z "${PORT:-}" ]; then
    PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')
fi
echo "dist_test: $NGPUS process(es), master 127.0.0.1:$PORT"

exec "$PYTHON" -m torch.distributed.run \
    --nnodes=1 --nproc_per_node="$NGPUS" --master_addr=127.0.0.1 --master_port="$PORT" \
    -m detbox.cli.main test "$CONFIG" "$CHECKPOINT" --launcher torchrun "$@"
