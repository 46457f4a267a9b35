"""A tiny WIDER FACE validation split in the official layouts: box list, images, .mat files.

::

    wider_face_split/wider_face_val_bbx_gt.txt
    WIDER_val/images/<event>/<name>.jpg
    eval_tools/ground_truth/wider_face_val.mat, wider_{easy,medium,hard}_val.mat
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# event -> [(name, (width, height), [x, y, w, h, blur, expression, illumination, invalid,
#            occlusion, pose] per face)]
EVENTS = {
    "0--Parade": [
        ("0_Parade_marchingband_1_5", (80, 60), [[5, 5, 20, 20, 0, 0, 0, 0, 0, 0],
                                                 [40, 10, 12, 14, 1, 0, 0, 0, 1, 0],
                                                 [60, 40, 6, 6, 2, 0, 0, 1, 0, 0]]),
        ("0_Parade_Parade_0_12", (64, 48), []),
    ],
    "1--Handshaking": [
        ("1_Handshaking_Handshaking_1_3", (72, 56), [[10, 20, 30, 25, 0, 0, 0, 0, 0, 0],
                                                     [50, 5, 0, 8, 2, 0, 0, 0, 2, 0]]),
    ],
}
# setting -> image name -> 1-based indices of the faces that count
KEEP = {
    "easy": {"0_Parade_marchingband_1_5": [1], "1_Handshaking_Handshaking_1_3": [1]},
    "medium": {"0_Parade_marchingband_1_5": [1, 2], "1_Handshaking_Handshaking_1_3": [1]},
    "hard": {"0_Parade_marchingband_1_5": [1, 2], "1_Handshaking_Handshaking_1_3": [1]},
}


def write_gt_txt(path: Path) -> Path:
    lines = []
    for event, images in EVENTS.items():
        for name, _, faces in images:
            lines += [f"{event}/{name}.jpg", str(len(faces))]
            lines += [" ".join(str(v) for v in face) for face in faces] or ["0 " * 9 + "0"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _cell_column(values: list) -> np.ndarray:
    column = np.empty((len(values), 1), dtype=object)
    for i, value in enumerate(values):
        column[i, 0] = value
    return column


def write_mat_files(gt_dir: Path) -> Path:
    """The official ground-truth files, nested as the real ones (cells of cells)."""
    from scipy.io import savemat

    gt_dir.mkdir(parents=True, exist_ok=True)
    events = list(EVENTS)
    files = [_cell_column([name for name, _, _ in EVENTS[e]]) for e in events]
    boxes = [_cell_column([np.asarray([f[:4] for f in faces], dtype=np.float64).reshape(-1, 4)
                           for _, _, faces in EVENTS[e]]) for e in events]
    savemat(gt_dir / "wider_face_val.mat", {"event_list": _cell_column(events),
                                            "file_list": _cell_column(files),
                                            "face_bbx_list": _cell_column(boxes)})
    for setting, keep in KEEP.items():
        lists = [_cell_column([np.asarray(keep.get(name, []), dtype=np.float64).reshape(-1, 1)
                               for name, _, _ in EVENTS[e]]) for e in events]
        savemat(gt_dir / f"wider_{setting}_val.mat", {"event_list": _cell_column(events),
                                                      "file_list": _cell_column(files),
                                                      "gt_list": _cell_column(lists)})
    return gt_dir


def write_wider_face(root: Path, with_mat: bool = True) -> Path:
    """Box list, images and (when ``with_mat``) the .mat ground truth under ``root``."""
    for event, images in EVENTS.items():
        for name, size, _ in images:
            path = root / "WIDER_val" / "images" / event / f"{name}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", size, (200, 160, 120)).save(path)
    write_gt_txt(root / "wider_face_split" / "wider_face_val_bbx_gt.txt")
    if with_mat:
        write_mat_files(root / "eval_tools" / "ground_truth")
    return root
