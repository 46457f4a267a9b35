"""Extra inputs a documentation example may ask for with ``<!-- doc-test: setup=NAME -->``.

Each setup writes into the example's own folder (a copy of the workspace, see ``workspace.py``)
and makes its files from the workspace's tiny COCO data, so no download and no outside data is
needed. Add a function here and an entry in ``SETUPS`` to offer a new one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from tests.docs.workspace import SIZE, run


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


SETUPS: dict[str, Callable[[Path, dict[str, str]], None]] = {
    "voc": voc, "middle_format": middle_format, "converter_inputs": converter_inputs,
    "onnx_model": onnx_model,
}
