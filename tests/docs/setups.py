"""Extra inputs a documentation example may ask for with ``<!-- doc-test: setup=NAME -->``.

Each setup writes into the example's own folder (a copy of the workspace, see ``workspace.py``)
and makes its files from the workspace's tiny COCO data, so no download is needed; only the
``finetune`` setups read real images, a few of Penn-Fudan from the repository's sibling
``shared/data`` (the examples are skipped where that folder is absent). Their heavy files (a
~170 MB checkpoint and a short training run) are made once per session, in the session's cache
folder, and linked into each example's folder. Add a function here and an entry in ``SETUPS``
to offer a new one.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from tests.docs.workspace import REPO, SIZE, run

PENNFUDAN = REPO.parent / "shared" / "data" / "pennfudan"
FINETUNE_CONFIG = "configs/torchvision/maskrcnn_resnet50_fpn_pennfudan.py"
STAND_IN = "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
# The stand-in command of docs/finetune.md: torchvision's Mask R-CNN with random weights.
STAND_IN_CODE = (
    "import torch, torchvision; torch.manual_seed(0); torch.save(torchvision.models.detection."
    "maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict(), "
    f"'{STAND_IN}')"
)
# docs/finetune.md's CPU run, as small as it goes: one epoch on 4 images, no evaluation.
SMALL_FINETUNE = [
    "train_cfg.max_epochs=1", "train_cfg.val_interval=2", "train_dataloader.num_workers=0",
    "train_dataloader.dataset.pipeline.2.scale=(320,192)",
]


def _coco(cwd: Path, split: str) -> dict:
    return json.loads((cwd / "annotations" / f"instances_{split}.json").read_text())


def _objects(coco: dict) -> dict[int, list[dict]]:
    by_image: dict[int, list[dict]] = {image["id"]: [] for image in coco["images"]}
    for ann in coco["annotations"]:
        by_image[ann["image_id"]].append(ann)
    return by_image


def _names(coco: dict) -> dict[int, str]:
    return {cat["id"]: cat["name"] for cat in coco["categories"]}


def voc(cwd: Path, env: dict[str, str]) -> None:
    """``data/VOC2007`` and ``data/VOC2012``: XML, JPEG and trainval/test id lists."""
    for year in ("2007", "2012"):
        root = cwd / "data" / f"VOC{year}"
        for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
            (root / sub).mkdir(parents=True)
        for split, list_name in (("train", "trainval"), ("val", "test")):
            coco = _coco(cwd, split)
            names, objects, ids = _names(coco), _objects(coco), []
            for image in coco["images"]:
                stem = Path(image["file_name"]).stem
                ids.append(stem)
                Image.open(cwd / "images" / image["file_name"]).convert("RGB").save(
                    root / "JPEGImages" / f"{stem}.jpg")
                (root / "Annotations" / f"{stem}.xml").write_text(
                    _voc_xml(stem, image, objects[image["id"]], names))
            (root / "ImageSets" / "Main" / f"{list_name}.txt").write_text("\n".join(ids) + "\n")


def _voc_xml(stem: str, image: dict, objects: list[dict], names: dict[int, str]) -> str:
    parts = [f"<annotation><filename>{stem}.jpg</filename><size><width>{image['width']}"
             f"</width><height>{image['height']}</height><depth>3</depth></size>"]
    for ann in objects:
        x, y, w, h = ann["bbox"]
        parts.append(f"<object><name>{escape(names[ann['category_id']])}</name><difficult>0"
                     f"</difficult><bndbox><xmin>{int(x) + 1}</xmin><ymin>{int(y) + 1}</ymin>"
                     f"<xmax>{int(x + w)}</xmax><ymax>{int(y + h)}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>\n"


def middle_format(cwd: Path, env: dict[str, str]) -> None:
    """``data/train.json`` (middle format, classes car / person) over ``data/images``."""
    coco = _coco(cwd, "train")
    objects = _objects(coco)
    (cwd / "data" / "images").symlink_to(cwd / "images")
    records = []
    for image in coco["images"]:
        anns = objects[image["id"]]
        records.append({
            "filename": image["file_name"], "width": image["width"], "height": image["height"],
            "ann": {"bboxes": [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                                a["bbox"][1] + a["bbox"][3]] for a in anns],
                    "labels": [a["category_id"] % 2 for a in anns]},
        })
    (cwd / "data" / "train.json").write_text(json.dumps(records))


def converter_inputs(cwd: Path, env: dict[str, str]) -> None:
    """Inputs for every ``detbox convert`` example: mask PNGs, LabelMe and YOLO files."""
    coco = _coco(cwd, "train")
    objects, names = _objects(coco), _names(coco)
    masks, pngs = cwd / "PennFudanPed" / "PedMasks", cwd / "PennFudanPed" / "PNGImages"
    labelme, labels = cwd / "labelme_jsons", cwd / "labels"
    for folder in (masks, pngs, labelme, labels):
        folder.mkdir(parents=True)
    for image in coco["images"]:
        stem, anns = Path(image["file_name"]).stem, objects[image["id"]]
        Image.open(cwd / "images" / image["file_name"]).save(pngs / f"{stem}.png")
        ids = np.zeros((image["height"], image["width"]), dtype=np.uint8)
        for number, ann in enumerate(anns, start=1):
            ids[mask_utils.decode(ann["segmentation"]).astype(bool)] = number
        Image.fromarray(ids).save(masks / f"{stem}_mask.png")
        shapes = [{"label": names[a["category_id"]], "shape_type": "rectangle", "group_id": None,
                   "points": [a["bbox"][:2], [a["bbox"][0] + a["bbox"][2],
                                              a["bbox"][1] + a["bbox"][3]]]} for a in anns]
        (labelme / f"{stem}.json").write_text(json.dumps({
            "imagePath": image["file_name"], "imageHeight": image["height"],
            "imageWidth": image["width"], "shapes": shapes}))
        (labels / f"{stem}.txt").write_text("".join(
            f"{a['category_id'] - 1} {(a['bbox'][0] + a['bbox'][2] / 2) / SIZE} "
            f"{(a['bbox'][1] + a['bbox'][3] / 2) / SIZE} {a['bbox'][2] / SIZE} "
            f"{a['bbox'][3] / SIZE}\n" for a in anns))
    (cwd / "classes.txt").write_text("".join(f"{names[i]}\n" for i in sorted(names)))


def onnx_model(cwd: Path, env: dict[str, str]) -> None:
    """``model.onnx``: the workspace's model exported."""
    run(["detbox", "export-onnx", "configs/my_retinanet.py", "model.pth", "model.onnx",
         "--shape", str(SIZE), str(SIZE)], cwd, env)


def _pennfudan_subset(root: Path, counts: dict[str, int]) -> None:
    """``root/annotations/instances_{train,val}.json`` + ``root/images``: a few Penn-Fudan images.

    The val split keeps its first images, ``FudanPed00001.png`` (the page's ``infer`` input)
    among them.
    """
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    for split, count in counts.items():
        coco = json.loads((PENNFUDAN / "annotations" / f"instances_{split}.json").read_text())
        coco["images"] = sorted(coco["images"], key=lambda image: image["file_name"])[:count]
        kept = {image["id"] for image in coco["images"]}
        coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in kept]
        for image in coco["images"]:
            shutil.copy(PENNFUDAN / "images" / image["file_name"], root / "images")
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))


def _finetune_files(cache: Path, env: dict[str, str]) -> Path:
    """Once per session: the stand-in, ``mask_rcnn_tv.pth``, the Penn-Fudan subset, a run."""
    done = cache / "finetune"
    if done.is_dir():
        return done
    if not (PENNFUDAN / "annotations" / "instances_val.json").is_file():
        pytest.skip(f"Penn-Fudan data not found at {PENNFUDAN} (the repo's sibling shared/data)")
    work = cache / "finetune.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "configs").symlink_to(REPO / "configs")
    _pennfudan_subset(work / "data" / "pennfudan", {"train": 4, "val": 2})
    run([sys.executable, "-c", STAND_IN_CODE], work, env)
    run(["detbox", "convert-weights", "torchvision", "maskrcnn_resnet50_fpn", STAND_IN,
         "mask_rcnn_tv.pth"], work, env)
    run(["detbox", "train", FINETUNE_CONFIG, "--load-from", "mask_rcnn_tv.pth", "--work-dir",
         "work_dirs/pennfudan", "--device", "cpu", "--cfg-options", *SMALL_FINETUNE], work, env)
    os.replace(work, done)
    return done


def finetune(cwd: Path, env: dict[str, str]) -> None:
    """docs/finetune.md's inputs: the stand-in checkpoint, ``mask_rcnn_tv.pth`` converted from
    it and ``data/pennfudan`` (4 train and 2 val images of the shared Penn-Fudan data)."""
    files = _finetune_files(Path(env["DETBOX_CACHE"]), env)
    for name in (STAND_IN, "mask_rcnn_tv.pth"):
        (cwd / name).symlink_to(files / name)
    pennfudan = cwd / "data" / "pennfudan"
    if pennfudan.is_symlink() or pennfudan.exists():
        pennfudan.unlink()
    pennfudan.symlink_to(files / "data" / "pennfudan")


def finetune_trained(cwd: Path, env: dict[str, str]) -> None:
    """:func:`finetune` plus ``work_dirs/pennfudan/latest.pth``, one small epoch's checkpoint."""
    finetune(cwd, env)
    files = Path(env["DETBOX_CACHE"]) / "finetune"
    (cwd / "work_dirs" / "pennfudan").mkdir(parents=True)
    (cwd / "work_dirs" / "pennfudan" / "latest.pth").symlink_to(
        files / "work_dirs" / "pennfudan" / "latest.pth")


def cityscapes(cwd: Path, env: dict[str, str]) -> None:
    """``data/cityscapes``: 3 small images of 2 cities per split in the official layout."""
    from tests.dataset_converters.cityscapes_layout import write_cityscapes

    for split in ("train", "val"):
        write_cityscapes(cwd / "data" / "cityscapes", split)


def wider_face(cwd: Path, env: dict[str, str]) -> None:
    """``data/WIDERFace``: a 3-image validation split in the official layouts, converted."""
    from detbox.dataset_converters.wider_face import wider_face_to_voc
    from tests.dataset_converters.wider_face_layout import write_wider_face

    root = write_wider_face(cwd / "data" / "WIDERFace")
    wider_face_to_voc(root / "wider_face_split" / "wider_face_val_bbx_gt.txt",
                      root / "WIDER_val" / "images", root / "WIDER_val" / "Annotations",
                      root / "val.txt")


SETUPS: dict[str, Callable[[Path, dict[str, str]], None]] = {
    "voc": voc, "middle_format": middle_format, "converter_inputs": converter_inputs,
    "onnx_model": onnx_model, "finetune": finetune, "finetune_trained": finetune_trained,
    "cityscapes": cityscapes, "wider_face": wider_face,
}
