"""One rank of the two-process CPU (gloo) scenarios of ``test_dist_engine.py``.

Started as ``python dist_worker.py ROOT`` with the variables torchrun would set (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), so joining the group goes
through the launcher's auto-detection. Each scenario's findings are written to
``ROOT/result_<rank>.json`` for the test to check.
"""

import json
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "engine"))

from engine_fakes import FakeDetector, make_evaluate_fn, make_loader  # noqa: E402

from detbox.structures import DetSample, ImageBatch, Instances  # noqa: E402

NUM_VAL_IMAGES = 7  # odd: the two shards differ in size
SIZE = 16


class StillDataset(Dataset):
    """Images and boxes that are a pure function of the index (no augmentation)."""

    def __init__(self, count: int = NUM_VAL_IMAGES) -> None:
        generator = torch.Generator().manual_seed(99)
        self.images = torch.rand(count, 3, SIZE, SIZE, generator=generator)
        corners = torch.rand(count, 2, generator=generator) * SIZE / 2
        self.boxes = torch.cat([corners, corners + SIZE / 2], dim=1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, DetSample]:
        sample = DetSample(image_id=index, file_name=f"still_{index}.png", ori_shape=(SIZE, SIZE),
                           img_shape=(SIZE, SIZE),
                           gt=Instances(boxes=self.boxes[index][None],
                                        labels=torch.tensor([index % 3])))
        return self.images[index], sample


def collate(items: list[tuple[torch.Tensor, DetSample]]) -> ImageBatch:
    return ImageBatch(images=torch.stack([i for i, _ in items]), samples=[s for _, s in items])


class MaskDetector(nn.Module):
    """Conv + BatchNorm features; predicts one box and a mask that encodes the image id."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.reg = nn.Linear(4, 4)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(images))).mean(dim=(2, 3))

    def loss(self, batch: ImageBatch) -> dict[str, torch.Tensor]:
        boxes = torch.cat([s.gt.boxes for s in batch.samples]) / SIZE
        return {"loss_bbox": F.l1_loss(self.reg(self.features(batch.images)), boxes)}

    def predict(self, batch: ImageBatch) -> list[Instances]:
        boxes = self.reg(self.features(batch.images)).sigmoid() * SIZE
        outputs = []
        for box, sample in zip(boxes, batch.samples):
            mask = torch.zeros(1, SIZE, SIZE, dtype=torch.bool)
            mask[0, : sample.image_id + 1, :2] = True
            outputs.append(Instances(boxes=box[None], labels=torch.tensor([0]),
                                     scores=torch.tensor([0.5]), masks=mask))
        return outputs


def still_batches(rank: int, world_size: int, batch_size: int = 2) -> list[ImageBatch]:
    """This rank's training batches: images ``rank, rank + world_size, ...`` of StillDataset."""
    dataset = StillDataset(8)
    indices = list(range(rank, len(dataset), world_size))
    return [collate([dataset[i] for i in indices[s : s + batch_size]])
            for s in range(0, len(indices), batch_size)]


def scenario_gather(rank: int, world_size: int) -> dict[str, Any]:
    from detbox.apis.evaluate import gather_inference, run_inference
    from detbox.data.samplers import InferenceSampler

    dataset = StillDataset()
    sampler = InferenceSampler(len(dataset), rank=rank, world_size=world_size)
    loader = DataLoader(dataset, batch_size=2, sampler=sampler, collate_fn=collate)
    run = gather_inference(run_inference(MaskDetector(), loader, torch.device("cpu")))
    if run is None:
        return {"gathered": None, "shard": list(sampler)}
    return {"gathered": [s.image_id for s in run.samples], "shard": list(sampler),
            "mask_rows": [int(p.masks[0, :, 0].sum()) for p in run.predictions]}


def scenario_val_loss(rank: int, world_size: int) -> dict[str, float]:
    from detbox.data.samplers import InferenceSampler
    from detbox.engine import compute_val_loss

    torch.manual_seed(0)
    model = MaskDetector()
    dataset = StillDataset()
    sampler = InferenceSampler(len(dataset), rank=rank, world_size=world_size)
    loader = DataLoader(dataset, batch_size=3, sampler=sampler, collate_fn=collate)
    return compute_val_loss(model, loader, torch.device("cpu"))


def _train_still(work_dir: Path, rank: int, world_size: int, accumulate: int,
                 model: nn.Module, sync_bn: bool) -> dict[str, Any]:
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    from detbox.engine import Trainer
    from detbox.engine.settings import LogSettings, RuntimeSettings, TrainSettings

    trainer = Trainer(
        model=model, train_loader=still_batches(rank, world_size),
        optimizer_cfg={"type": "SGD", "lr": 0.1}, lr_schedule_cfg={"policy": "constant",
                                                                   "warmup": None},
        train=TrainSettings(max_epochs=1, accumulate_steps=accumulate), work_dir=work_dir,
        seed=0, log=LogSettings(interval=1, progress_bar=False),
        runtime=RuntimeSettings(sync_bn=sync_bn),
    )
    syncs = []

    # Real annotations (no postponed evaluation in this file): DDP checks them.
    def counting_hook(state: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        syncs.append(1)
        return default_hooks.allreduce_hook(state, bucket)

    trainer.loss_module.register_comm_hook(None, counting_hook)
    trainer.train()
    weights = {k: v.tolist() for k, v in trainer.model.named_parameters()}
    notes = [line.split(" INFO ")[-1] for log in work_dir.glob("*.log")
             for line in log.read_text().splitlines() if "SyncBN" in line or "sync_bn" in line]
    return {"syncs": len(syncs), "steps": trainer.iteration, "weights": weights,
            "norm": type(trainer.model.norm).__name__, "notes": notes}


def scenario_accumulate(root: Path, rank: int, world_size: int) -> dict[str, Any]:
    """Plain BatchNorm with sync_bn=True, then a model built with SyncBatchNorm: on CPU
    processes both train with per-process BatchNorm."""
    torch.manual_seed(0)
    plain = MaskDetector()
    torch.manual_seed(0)
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(MaskDetector())
    return {"accumulate_1": _train_still(root / "acc1", rank, world_size, 1, plain, True),
            "accumulate_2": _train_still(root / "acc2", rank, world_size, 2, synced, False)}


def _fake_trainer(work_dir: Path, rank: int, world_size: int, model_seed: int,
                  **loader_options: Any):
    from detbox.engine import Trainer
    from detbox.engine.dist import get_rank
    from detbox.engine.settings import CheckpointSettings, LogSettings, TrainSettings

    torch.manual_seed(model_seed)
    evaluate = make_evaluate_fn()
    loader = make_loader(rank=rank, world_size=world_size, **loader_options)
    return Trainer(
        model=FakeDetector(), train_loader=loader,
        optimizer_cfg={"type": "SGD", "lr": 0.05, "momentum": 0.9},
        lr_schedule_cfg={"policy": "cosine", "warmup": None}, train=TrainSettings(max_epochs=3),
        work_dir=work_dir,
        evaluate_fn=lambda model: {**evaluate(model), "rank": float(get_rank())},
        seed=5, log=LogSettings(progress_bar=False),
        checkpoint=CheckpointSettings(interval=1, save_best="bbox_mAP"),
    )


def scenario_resume(root: Path, rank: int, world_size: int) -> dict[str, Any]:
    straight = _fake_trainer(root / "straight", rank, world_size, model_seed=0)
    metrics = straight.train()
    crashed = _fake_trainer(root / "resumed", rank, world_size, model_seed=0, fail_at_epoch=1)
    try:
        crashed.train()
    except KeyboardInterrupt:  # the loader's simulated crash before the second epoch
        pass
    resumed = _fake_trainer(root / "resumed", rank, world_size, model_seed=rank + 7)
    assert resumed.resume("auto")
    resumed.train()
    same = all(torch.equal(a, b) for a, b in zip(straight.model.state_dict().values(),
                                                 resumed.model.state_dict().values()))
    return {"identical": same, "metrics_rank": metrics["rank"], "epoch": resumed.epoch}


def main(root: str) -> None:
    from detbox.engine import get_rank, get_world_size, init_distributed

    torch.set_num_threads(1)
    device = init_distributed("auto", "cpu")
    rank, world_size = get_rank(), get_world_size()
    out = Path(root)
    results = {
        "device": str(device),
        "world_size": world_size,
        "gather": scenario_gather(rank, world_size),
        "val_loss": scenario_val_loss(rank, world_size),
        "accumulate": scenario_accumulate(out, rank, world_size),
        "resume": scenario_resume(out, rank, world_size),
    }
    (out / f"result_{rank}.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
