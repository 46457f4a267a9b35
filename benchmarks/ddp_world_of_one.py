"""``detbox train`` inside a process group of one: the DDP path on a machine with one GPU.

The launcher joins no process group for a single process, so on one GPU neither NCCL nor
``DistributedDataParallel`` would run. This script joins a group of one first (NCCL on a GPU,
gloo on a CPU) and then runs ``detbox train`` with the given arguments, which keeps that group:
the model trains inside DDP (its gradients all-reduced through the backend) and the run ends
as usual with its evaluation and checkpoint. ``benchmarks/gpu_checks.sh`` calls it.

    python benchmarks/ddp_world_of_one.py configs/demo/retinanet_r18_fpn_synthetic.py \
        --device cuda --work-dir work_dirs/ddp_check
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import free_port  # noqa: E402


def record_ddp_wrappers() -> list[str]:
    """Describe every ``DistributedDataParallel`` built from now on in the returned list."""
    built: list[str] = []
    init = nn.parallel.DistributedDataParallel.__init__

    def recording_init(self, module, *args, **kwargs) -> None:
        init(self, module, *args, **kwargs)
        built.append(f"DistributedDataParallel({type(module).__name__}, device_ids="
                     f"{kwargs.get('device_ids')})")

    nn.parallel.DistributedDataParallel.__init__ = recording_init
    return built


def main(argv: list[str]) -> int:
    from detbox.cli.main import main as detbox_main

    use_gpu = "cpu" not in argv and torch.cuda.is_available()
    if use_gpu:
        torch.cuda.set_device(0)
    dist.init_process_group("nccl" if use_gpu else "gloo", rank=0, world_size=1,
                            init_method=f"tcp://127.0.0.1:{free_port()}")
    built = record_ddp_wrappers()
    try:
        status = detbox_main(["train", *argv])
    finally:
        print(f"process group: backend {dist.get_backend()}, world size "
              f"{dist.get_world_size()}; built: {'; '.join(built) or 'no DDP wrapper'}")
        dist.destroy_process_group()
    if not built:
        print("the model did not train inside DistributedDataParallel", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
