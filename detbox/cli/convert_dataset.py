"""``detbox convert FORMAT ...``: turn VOC, mask PNG, LabelMe, YOLO and Cityscapes annotations
into COCO JSON, COCO into YOLO labels, and WIDER FACE box lists into VOC XML."""

from __future__ import annotations

import argparse

from detbox.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``convert`` parser and one sub-parser per conversion."""
    parser = subparsers.add_parser(
        "convert", help="convert annotations between VOC, mask PNGs, LabelMe, YOLO, Cityscapes, "
        "WIDER FACE and COCO",
        description="Convert annotations to COCO JSON (or COCO to YOLO). Outputs are written "
        "atomically: an interrupted run leaves no half-written file.",
    )
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    _add_voc2coco(kinds)
    _add_masks2coco(kinds)
    _add_labelme2coco(kinds)
    _add_yolo2coco(kinds)
    _add_coco2yolo(kinds)
    _add_cityscapes(kinds)
    _add_widerface(kinds)


def _add_voc2coco(kinds: argparse._SubParsersAction) -> None:
    p = kinds.add_parser("voc2coco", help="Pascal VOC XML folder -> COCO JSON")
    p.add_argument("data_root", help="VOC folder (with Annotations/, JPEGImages/)")
    p.add_argument("out", help="COCO JSON file to write")
    p.add_argument("--split-file", help="image ids, relative to data_root (e.g. "
                   "ImageSets/Main/val.txt); default: every XML")
    p.add_argument("--ann-subdir", default="Annotations")
    p.add_argument("--img-subdir", default="JPEGImages")
    p.add_argument("--class-names", nargs="+", help="category order (ids 1..C); objects of "
                   "other classes are left out. Default: every name found, sorted")
    p.set_defaults(func=_run_voc2coco)


def _add_masks2coco(kinds: argparse._SubParsersAction) -> None:
    p = kinds.add_parser("masks2coco", help="instance-mask PNGs -> COCO JSON with RLE masks")
    p.add_argument("mask_dir", help="folder of <stem><suffix>.png masks (pixel value = "
                   "instance id, 0 = background)")
    p.add_argument("img_dir", help="folder of the images <stem>.jpg/.png/...")
    p.add_argument("out", help="COCO JSON file to write")
    p.add_argument("--class-name", help="the class of every object")
    p.add_argument("--category", action="append", default=[], metavar="GLOB=NAME",
                   help="class of the masks whose file name matches GLOB (repeatable; the "
                   "first match wins), e.g. --category 'cat_*=cat'")
    p.add_argument("--mask-suffix", default="_mask", help="after the image stem in a mask "
                   "file name (default: _mask)")
    p.set_defaults(func=_run_masks2coco)


def _add_labelme2coco(kinds: argparse._SubParsersAction) -> None:
    p = kinds.add_parser("labelme2coco", help="LabelMe JSON folder -> COCO JSON")
    p.add_argument("json_dir", help="folder of LabelMe .json files")
    p.add_argument("out", help="COCO JSON file to write")
    p.add_argument("--img-dir", help="folder file_name entries are relative to "
                   "(default: json_dir)")
    p.add_argument("--class-names", nargs="+", help="category order (ids 1..C); default: "
                   "every label found, sorted")
    p.set_defaults(func=_run_labelme2coco)


def _add_yolo2coco(kinds: argparse._SubParsersAction) -> None:
    p = kinds.add_parser("yolo2coco", help="YOLO txt labels -> COCO JSON")
    p.add_argument("img_dir", help="image folder (searched recursively)")
    p.add_argument("label_dir", help="label folder mirroring img_dir (<stem>.txt)")
    p.add_argument("names", help="class names file (one per line) or YOLO data.yaml")
    p.add_argument("out", help="COCO JSON file to write")
    p.set_defaults(func=_run_yolo2coco)


def _add_coco2yolo(kinds: argparse._SubParsersAction) -> None:
    p = kinds.add_parser("coco2yolo", help="COCO JSON -> YOLO txt labels")
    p.add_argument("ann_file", help="COCO annotation file")
    p.add_argument("out_dir", help="folder for <file_name>.txt labels and the names file")
    p.add_argument("--names-file", default="classes.txt", help="default: classes.txt")
    p.set_defaults(func=_run_coco2yolo)


def _add_cityscapes(kinds: argparse._SubParsersAction) -> None:
    p = kinds.add_parser("cityscapes", help="Cityscapes gtFine instances -> COCO JSON per split")
    p.add_argument("root", help="Cityscapes folder (with leftImg8bit/ and gtFine/)")
    p.add_argument("out_dir", help="folder for instancesonly_filtered_gtFine_<split>.json")
    p.add_argument("--splits", nargs="+", default=["train", "val"], help="default: train val")
    p.set_defaults(func=_run_cityscapes)


def _add_widerface(kinds: argparse._SubParsersAction) -> None:
    p = kinds.add_parser("widerface", help="WIDER FACE box list -> VOC XML files + id list")
    p.add_argument("gt_txt", help="wider_face_split/wider_face_<split>_bbx_gt.txt")
    p.add_argument("img_dir", help="folder of the <event>/ image folders (WIDER_<split>/images)")
    p.add_argument("ann_dir", help="folder for the <id>.xml files (WIDER_<split>/Annotations)")
    p.add_argument("split_file", help="id list to write (<split>.txt)")
    p.set_defaults(func=_run_widerface)


def _summary(data: dict, out: str) -> int:
    print(f"wrote {len(data['images'])} images, {len(data['annotations'])} annotations, "
          f"{len(data['categories'])} categories to {out}")
    return 0


def _run_voc2coco(args: argparse.Namespace) -> int:
    from detbox.dataset_converters import voc_to_coco

    data = voc_to_coco(args.data_root, args.out, ann_subdir=args.ann_subdir,
                       img_subdir=args.img_subdir, split_file=args.split_file,
                       class_names=args.class_names)
    return _summary(data, args.out)


def _run_masks2coco(args: argparse.Namespace) -> int:
    from detbox.dataset_converters import masks_to_coco

    patterns = []
    for option in args.category:
        glob, sep, name = option.partition("=")
        if not sep or not glob or not name:
            raise ConfigError(f"--category expects GLOB=NAME, got '{option}'")
        patterns.append((glob, name))
    data = masks_to_coco(args.mask_dir, args.img_dir, args.out, class_name=args.class_name,
                         category_patterns=patterns, mask_suffix=args.mask_suffix)
    return _summary(data, args.out)


def _run_labelme2coco(args: argparse.Namespace) -> int:
    from detbox.dataset_converters import labelme_to_coco

    data = labelme_to_coco(args.json_dir, args.out, img_dir=args.img_dir,
                           class_names=args.class_names)
    return _summary(data, args.out)


def _run_yolo2coco(args: argparse.Namespace) -> int:
    from detbox.dataset_converters import yolo_to_coco

    data = yolo_to_coco(args.img_dir, args.label_dir, args.names, args.out)
    return _summary(data, args.out)


def _run_coco2yolo(args: argparse.Namespace) -> int:
    from detbox.dataset_converters import coco_to_yolo

    counts = coco_to_yolo(args.ann_file, args.out_dir, names_file=args.names_file)
    print(f"wrote labels of {counts['images']} images ({counts['annotations']} boxes, "
          f"{counts['categories']} classes) to {args.out_dir}")
    return 0


def _run_cityscapes(args: argparse.Namespace) -> int:
    from pathlib import Path

    from detbox.data.skipping import UnreadableFiles
    from detbox.dataset_converters.cityscapes import cityscapes_ann_name, cityscapes_to_coco

    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    for split in args.splits:
        skipped = UnreadableFiles("images")
        out = str(Path(args.out_dir) / cityscapes_ann_name(split))
        data = cityscapes_to_coco(args.root, out, split=split, skipped=skipped)
        _summary(data, out)
        if skipped.entries:
            names = ", ".join(f"{Path(path).name}" for path, _ in skipped.entries)
            print(f"skipped {len(skipped)} image(s) of '{split}' whose annotations cannot be "
                  f"read: {names}")
    return 0


def _run_widerface(args: argparse.Namespace) -> int:
    from detbox.data.skipping import UnreadableFiles
    from detbox.dataset_converters.wider_face import wider_face_to_voc

    skipped = UnreadableFiles("images")
    counts = wider_face_to_voc(args.gt_txt, args.img_dir, args.ann_dir, args.split_file,
                               skipped=skipped)
    print(f"wrote {counts['images']} XML files ({counts['faces']} faces, {counts['ignored']} "
          f"invalid ones marked difficult) to {args.ann_dir} and their ids to {args.split_file}")
    if skipped.entries:
        print(skipped.summary(counts["images"] + len(skipped)))
    return 0
