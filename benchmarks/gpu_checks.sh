#!/usr/bin/env bash
# The GPU checks in one command, for a machine with one CUDA device (results under $OUT):
#
#   OUT=work_dirs/gpu_checks bash benchmarks/gpu_checks.sh
#
# 1. benchmarks/bench_gpu.py: training step (fp32, AMP fp16) and inference (fp32, fp16
#    autocast) of the R50-FPN detectors against torchvision: time, images/s, peak memory.
# 2. `detbox train` with AMP fp16 (autocast + GradScaler) on the synthetic shapes, then its
#    evaluation: the loss scaler's path end to end.
# 3. The same recipe inside an NCCL process group of one (benchmarks/ddp_world_of_one.py):
#    DistributedDataParallel and its gradient all-reduce on the GPU.
# 4. The tests that need CUDA.
#
# Each step has its own time limit and its exit status goes to $OUT/summary.txt; a failing
# step does not stop the others. Evaluation needs pycocotools and faster-coco-eval: where pip
# cannot reach an index, put their wheels in .whl/ beside this repository's files first.
# A quick rehearsal on a machine without a GPU:
#   DEVICE=cpu AMP=bf16 ITERS=4 BENCH_ARGS="--device cpu --models retinanet_resnet50_fpn \
#       --train-size 96 128 --size 96 --repeats 1 --warmup 0" bash benchmarks/gpu_checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-work_dirs/gpu_checks}
DEVICE=${DEVICE:-cuda}
BENCH_ARGS=${BENCH_ARGS:-}
ITERS=${ITERS:-60}
AMP=${AMP:-fp16}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export DETBOX_CACHE=${DETBOX_CACHE:-/tmp/detbox_cache}
SCRATCH=$(mktemp -d)
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"

if [ -d .whl ] && ! python3 -c "import pycocotools, faster_coco_eval" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --target "$SCRATCH/site" .whl/*.whl &&
        export PYTHONPATH=$PYTHONPATH:$SCRATCH/site
fi

if ! python3 -c "import pycocotools, faster_coco_eval" 2>/dev/null; then
    echo "gpu_checks: detbox needs pycocotools and faster-coco-eval here (pip install them, or" \
         "put their wheels in .whl/)" | tee -a "$SUMMARY" >&2
    exit 2
fi

step() {  # step NAME LIMIT_S COMMAND...: run, keep its output, record its exit status
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
    local status=$?
    echo "$name: exit $status in $((SECONDS - start)) s" | tee -a "$SUMMARY"
}

python3 - >>"$SUMMARY" 2>&1 <<'EOF'
import torch, torchvision
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {gpu}, "
      f"NCCL available: {torch.distributed.is_nccl_available()}")
EOF

# shellcheck disable=SC2086  # BENCH_ARGS is a list of options
step bench_gpu 270 python3 benchmarks/bench_gpu.py --json "$OUT/bench_gpu.json" $BENCH_ARGS

RECIPE=configs/demo/retinanet_r18_fpn_synthetic.py
SHORT=("train_cfg=dict(by_epoch=False, max_iters=$ITERS, val_interval=$ITERS)"
       "checkpoint.interval=$ITERS" log.interval=10 val_dataloader.dataset.num_images=64)
step amp_fp16_train 110 python3 -m detbox.cli.main train "$RECIPE" --device "$DEVICE" \
    --amp "$AMP" --work-dir "$SCRATCH/amp" --cfg-options "${SHORT[@]}"
step nccl_ddp_train 110 python3 benchmarks/ddp_world_of_one.py "$RECIPE" --device "$DEVICE" \
    --work-dir "$SCRATCH/ddp" --cfg-options "${SHORT[@]}"
step cuda_tests 60 python3 -m pytest -q -rs tests/evaluation/test_results_format.py \
    tests/engine/test_accumulate_amp.py tests/engine/test_cpu_bf16.py

rm -rf "$SCRATCH"
cat "$SUMMARY"
