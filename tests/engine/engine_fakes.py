"""A tiny detector and dataset so the engine tests do not depend on the real models or data.

The dataset augments with Python's ``random``, numpy's and torch's global generators, and the
detector has dropout and BatchNorm, so every RNG and buffer that exact resume must restore is
exercised.
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from detbox.structures import DetSample, ImageBatch, Instances

NUM_IMAGES = 12
IMAGE_SIZE = 16


class FakeDataset(Dataset):
    """``NUM_IMAGES`` fixed random images, each with one box, randomly flipped and jittered."""

    def __init__(self, num_classes: int = 3) -> None:
        generator = torch.Generator().manual_seed(1234)
        self.images = torch.rand(NUM_IMAGES, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
        self.labels = torch.randint(0, num_classes, (NUM_IMAGES,), generator=generator)
        corners = torch.rand(NUM_IMAGES, 2, generator=generator) * IMAGE_SIZE / 2
        self.boxes = torch.cat([corners, corners + IMAGE_SIZE / 2], dim=1)

    def __len__(self) -> int:
        return NUM_IMAGES

    def __getitem__(self, index: int) -> tuple[torch.Tensor, DetSample]:
        image = self.images[index].clone()
        box = self.boxes[index].clone()
        flip = random.random() < 0.5
        if flip:
            image = image.flip(-1)
            box = torch.stack([IMAGE_SIZE - box[2], box[1], IMAGE_SIZE - box[0], box[3]])
        image = image * (0.8 + 0.4 * torch.rand(()))
        image = image + torch.from_numpy(np.random.normal(0, 0.05, image.shape)).float()
        sample = DetSample(
            image_id=index,
            file_name=f"img_{index:03d}.jpg",
            ori_shape=(IMAGE_SIZE, IMAGE_SIZE),
            img_shape=(IMAGE_SIZE, IMAGE_SIZE),
            flip="horizontal" if flip else None,
            gt=Instances(boxes=box[None], labels=self.labels[index : index + 1]),
        )
        return image, sample


def collate(items: list[tuple[torch.Tensor, DetSample]]) -> ImageBatch:
    return ImageBatch(images=torch.stack([i for i, _ in items]), samples=[s for _, s in items])


class EpochBatchSampler:
    """Shuffles with ``seed + epoch`` (like a distributed sampler); shards by rank."""

    def __init__(self, size: int, batch_size: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1, fail_at_epoch: int | None = None) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.fail_at_epoch = fail_at_epoch
        self.epoch = 0
        self.epochs_seen: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        if epoch == self.fail_at_epoch:
            raise KeyboardInterrupt(f"simulated crash before epoch {epoch + 1}")
        self.epoch = epoch
        self.epochs_seen.append(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()[self.rank::self.world_size]
        for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
            yield order[start : start + self.batch_size]

    def __len__(self) -> int:
        return (self.size // self.world_size) // self.batch_size


def make_loader(batch_size: int = 2, **sampler_kwargs: Any) -> DataLoader:
    sampler = EpochBatchSampler(NUM_IMAGES, batch_size, **sampler_kwargs)
    return DataLoader(FakeDataset(), batch_sampler=sampler, collate_fn=collate, num_workers=0)


class FakeDetector(nn.Module):
    """Conv + BatchNorm + dropout features, a classifier and a box regressor.

    Args:
        num_classes: classifier outputs.
        nan_at_call: make ``loss_cls`` NaN on this (1-based) call of ``loss``.
        bad_grad_at_call: add a term that is finite but has a NaN gradient on this call.
        sigterm_at_call: send SIGTERM to this process during this call.
    """

    def __init__(self, num_classes: int = 3, nan_at_call: int | None = None,
                 bad_grad_at_call: int | None = None,
                 sigterm_at_call: int | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.dropout = nn.Dropout(0.3)
        self.cls = nn.Linear(8, num_classes)
        self.reg = nn.Linear(8, 4)
        self.nan_at_call = nan_at_call
        self.bad_grad_at_call = bad_grad_at_call
        self.sigterm_at_call = sigterm_at_call
        self.calls = 0
        self.last_files: list[str] = []

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.dropout(F.relu(self.norm(self.conv(images))).mean(dim=(2, 3)))

    def loss(self, batch: ImageBatch) -> dict[str, torch.Tensor]:
        self.calls += 1
        self.last_files = [s.file_name for s in batch.samples]
        feats = self.features(batch.images)
        labels = torch.cat([s.gt.labels for s in batch.samples])
        boxes = torch.cat([s.gt.boxes for s in batch.samples]) / IMAGE_SIZE
        logits = self.cls(feats)
        losses = {
            "loss_cls": F.cross_entropy(logits, labels),
            "loss_bbox": F.l1_loss(self.reg(feats), boxes),
            "acc": (logits.argmax(1) == labels).float().mean(),
        }
        if self.calls == self.nan_at_call:
            losses["loss_cls"] = losses["loss_cls"] * float("nan")
        if self.calls == self.bad_grad_at_call:
            losses["loss_bbox"] = losses["loss_bbox"] + (self.reg.weight.sum() * 0).sqrt()
        if self.calls == self.sigterm_at_call:
            os.kill(os.getpid(), signal.SIGTERM)
        return losses

    def predict(self, batch: ImageBatch) -> list[Instances]:
        feats = self.features(batch.images)
        scores, labels = self.cls(feats).softmax(1).max(1)
        boxes = self.reg(feats).sigmoid() * IMAGE_SIZE
        return [Instances(boxes=box[None], labels=label[None], scores=score[None])
                for box, label, score in zip(boxes, labels, scores)]


def make_evaluate_fn() -> Any:
    """An evaluation that draws from every global RNG, as a real one with a DataLoader may."""
    dataset = FakeDataset()
    images = dataset.images

    def evaluate(model: nn.Module) -> dict[str, float]:
        random.random()
        np.random.rand()
        torch.rand(3)
        assert not model.training
        logits = model.cls(model.features(images))
        accuracy = (logits.argmax(1) == dataset.labels).float().mean().item()
        return {"bbox_mAP": accuracy, "bbox_mAP_50": min(1.0, accuracy + 0.1)}

    return evaluate


def read_jsonl(work_dir: Path) -> list[dict[str, Any]]:
    import json

    records = []
    for path in sorted(Path(work_dir).glob("*.log.jsonl")):
        records += [json.loads(line) for line in path.read_text().splitlines() if line]
    return records



def _train_one_distributed_run(rank: int, world_size: int, work_dir: Path,
                               nan_on_rank: int | None, sigterm_on_rank: int | None = None,
                               max_time: float | None = None) -> dict[str, Any]:
    from detbox.engine import Trainer
    from detbox.engine.settings import LogSettings, TrainSettings
    from detbox.errors import TrainingError

    torch.manual_seed(rank)  # DDP must make the replicas equal by broadcasting rank 0's weights
    model = FakeDetector(nan_at_call=4 if rank == nan_on_rank else None,
                         sigterm_at_call=5 if rank == sigterm_on_rank else None)
    trainer = Trainer(
        model=model, train_loader=make_loader(rank=rank, world_size=world_size),
        optimizer_cfg={"type": "SGD", "lr": 0.05, "momentum": 0.9},
        lr_schedule_cfg={"policy": "step", "milestones": [1], "warmup": None},
        train=TrainSettings(max_epochs=2, max_time=max_time), work_dir=work_dir,
        evaluate_fn=make_evaluate_fn(),
        log=LogSettings(interval=1, progress_bar=False), seed=None,
    )
    result: dict[str, Any] = {"seed": trainer.seed, "error": None}
    try:
        trainer.train()
    except TrainingError as exc:
        result["error"] = str(exc)
    result["weights"] = {k: v.tolist() for k, v in model.state_dict().items()}
    result["iteration"] = trainer.iteration
    return result


def distributed_worker(rank: int, world_size: int, port: int, root: str) -> None:
    """One rank of four CPU (gloo) runs: ``root/clean`` trains normally, ``root/nan`` hits a
    NaN loss on rank 1 only, ``root/sigterm`` gets SIGTERM on rank 0 only, ``root/budget``
    trains for a 1 s budget. Writes ``root/result_<rank>.json`` for the test to check."""
    import json
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    results = {
        name: _train_one_distributed_run(rank, world_size, Path(root) / name, nan_on_rank,
                                         sigterm_on_rank, max_time)
        for name, nan_on_rank, sigterm_on_rank, max_time in (
            ("clean", None, None, None), ("nan", 1, None, None), ("sigterm", None, 0, None),
            ("budget", None, None, 1.0))
    }
    (Path(root) / f"result_{rank}.json").write_text(json.dumps(results))
    dist.destroy_process_group()
