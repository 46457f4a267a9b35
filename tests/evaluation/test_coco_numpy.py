"""The NumPy COCOeval backend against pycocotools run directly: the same precision and recall
arrays to the bit (``np.array_equal``), on Penn-Fudan and on random sets built to hit every rule
of pycocotools' matching and accumulation."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pytest
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detbox.errors import DetboxError
from detbox.evaluation.coco_accumulate import _counts_needed, _suffix_max, score_order
from detbox.evaluation.coco_backends import run_cocoeval
from detbox.evaluation.coco_matching import rank_in_group
from detbox.evaluation.coco_numpy import box_iou
from detbox.evaluation.coco_scoring import evaluate_coco, load_coco_gt
from detbox.evaluation.results_file import ResultsError, check_results
from tests.evaluation.simulate import simulate_detections


def pycocotools_arrays(gt: dict, results: list[dict], *, use_cats: bool = True,
                       max_dets=(1, 10, 100), img_ids=None, cat_ids=None):
    """pycocotools' COCOeval on copies of ``gt`` and ``results``: precision, recall, stats."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        if results:
            coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        else:  # loadRes cannot take an empty list
            coco_dt = COCO()
            coco_dt.dataset = {"images": gt["images"], "categories": gt["categories"],
                               "annotations": []}
            coco_dt.createIndex()
        coco_eval = COCOeval(coco_gt, coco_dt, "bbox")
        coco_eval.params.useCats = int(use_cats)
        coco_eval.params.maxDets = list(max_dets)
        if img_ids is not None:
            coco_eval.params.imgIds = list(img_ids)
        if cat_ids is not None:
            coco_eval.params.catIds = list(cat_ids)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval.eval["precision"], coco_eval.eval["recall"], coco_eval.stats


def numpy_arrays(gt: dict, results: list[dict], *, use_cats: bool = True,
                 max_dets=(1, 10, 100), img_ids=None, cat_ids=None):
    coco_gt = load_coco_gt(copy.deepcopy(gt))
    acc = run_cocoeval(
        coco_gt, results, "bbox",
        img_ids=sorted(coco_gt.getImgIds()) if img_ids is None else img_ids,
        cat_ids=sorted(coco_gt.getCatIds()) if cat_ids is None else cat_ids,
        max_dets=max_dets, use_cats=use_cats, backend="numpy",
    )
    assert acc.backend == "numpy"
    return acc


def assert_identical(gt, results, **settings) -> None:
    precision, recall, _ = pycocotools_arrays(gt, results, **settings)
    acc = numpy_arrays(gt, results, **settings)
    assert acc.precision.shape == precision.shape and acc.recall.shape == recall.shape
    assert np.array_equal(acc.precision, precision)
    assert np.array_equal(acc.recall, recall)


def random_set(seed: int, *, images: int = 24, categories: int = 5, first_id: int = 1,
               many: bool = False) -> tuple[dict, list[dict]]:
    """Boxes on a coarse grid (equal IoUs, duplicate boxes), scores in steps of 0.1 (ties),
    crowds, ``ignore`` flags, zero-size boxes, ground-truth areas unlike w * h, images without
    ground truth, a category without ground truth (the last) and one without detections (the
    first), and with ``many`` images of 150 detections."""
    rng = np.random.default_rng(seed)

    def box() -> list:
        x, y = (int(v) for v in rng.integers(0, 80, 2) * 2)
        w, h = (int(v) for v in rng.integers(0, 12, 2) * (4 if rng.random() < 0.5 else 12))
        return [x, y, w, h] if rng.random() < 0.5 else [float(x), float(y), float(w), float(h)]

    annotations, results = [], []
    for image_id in range(1, images + 1):
        for _ in range(0 if image_id % 5 == 0 else int(rng.integers(1, 7))):
            bbox = box()
            ann = {"id": first_id + len(annotations), "image_id": image_id,
                   "category_id": int(rng.integers(1, categories)), "bbox": bbox,
                   "area": bbox[2] * bbox[3] * float(rng.choice([1.0, 0.5, 2.0])),
                   "iscrowd": int(rng.random() < 0.15)}
            if rng.random() < 0.2:
                ann["ignore"] = int(rng.random() < 0.5)
            annotations.append(ann)
            if rng.random() < 0.15:  # a duplicate: exact IoU ties
                annotations.append(dict(ann, id=first_id + len(annotations)))
        own = [a for a in annotations if a["image_id"] == image_id]
        count = 150 if many and image_id % 4 == 1 else int(rng.integers(0, 40))
        for _ in range(count):
            if own and rng.random() < 0.6:
                source = own[int(rng.integers(len(own)))]
                bbox = [v + int(rng.integers(-3, 4)) for v in source["bbox"]]
                category = source["category_id"] if rng.random() < 0.8 else int(
                    rng.integers(2, categories + 1))
                category = max(category, 2)
            else:
                bbox, category = box(), int(rng.integers(2, categories + 1))
            results.append({"image_id": image_id, "category_id": category, "bbox": bbox,
                            "score": float(rng.integers(0, 11)) / 10})
    gt = {
        "images": [{"id": i, "width": 200, "height": 200} for i in range(1, images + 1)],
        "annotations": annotations,
        "categories": [{"id": c, "name": f"c{c}"} for c in range(1, categories + 1)],
    }
    return gt, results


@pytest.mark.parametrize("seed", range(6))
def test_random_sets_bbox(seed):
    gt, results = random_set(seed)
    assert_identical(gt, results)


@pytest.mark.parametrize("seed", range(3))
def test_random_sets_proposals_pool_the_categories(seed):
    gt, results = random_set(100 + seed, many=True)
    assert_identical(gt, results, use_cats=False, max_dets=(100, 300, 1000))
    assert_identical(gt, results, use_cats=False, max_dets=(1, 10, 100))


@pytest.mark.parametrize("seed", range(3))
def test_more_than_max_dets_per_image_and_small_limits(seed):
    gt, results = random_set(200 + seed, many=True)
    assert_identical(gt, results)
    assert_identical(gt, results, max_dets=(2, 5, 20))


def test_subsets_of_images_and_categories():
    gt, results = random_set(7)
    assert_identical(gt, results, img_ids=[3, 1, 8, 9, 22, 999])
    assert_identical(gt, results, cat_ids=[4, 2, 5])
    # pooled: the given category order decides score ties inside an image, as in pycocotools
    assert_identical(gt, results, use_cats=False, cat_ids=[4, 2, 5, 1, 3])
    assert_identical(gt, results, use_cats=False, cat_ids=[3, 1])


def test_large_and_negative_ids():
    """Ids far apart take the sorted lookup rather than the table."""
    gt, results = random_set(13)
    image, category = {i: 10**12 + 7 * i for i in range(1, 25)}, {c: -3 * c for c in range(1, 6)}
    gt["images"] = [dict(g, id=image[g["id"]]) for g in gt["images"]]
    gt["categories"] = [dict(c, id=category[c["id"]]) for c in gt["categories"]]
    gt["annotations"] = [dict(a, image_id=image[a["image_id"]],
                              category_id=category[a["category_id"]]) for a in gt["annotations"]]
    results = [dict(r, image_id=image[r["image_id"]], category_id=category[r["category_id"]])
               for r in results]
    assert_identical(gt, results)
    assert_identical(gt, results, use_cats=False, max_dets=(100, 300, 1000))


def test_a_ground_truth_with_id_zero_never_counts_as_matched():
    """pycocotools keeps the matched id, so a match to id 0 reads as no match."""
    gt, results = random_set(11, first_id=0)
    zero = gt["annotations"][0]
    zero.update(bbox=[10, 10, 40, 40], area=1600.0, iscrowd=0, category_id=2)
    results.append({"image_id": zero["image_id"], "category_id": 2, "bbox": [10, 10, 40, 40],
                    "score": 1.0})
    assert_identical(gt, results)


@pytest.mark.parametrize("later_is_left", [True, False])
def test_equal_iou_goes_to_the_later_ground_truth(later_is_left):
    """Two ground truths equally good for the first detection; the second detection overlaps
    the left one more. pycocotools gives the first detection the later ground truth."""
    left, right = [8, 10, 10, 10], [12, 10, 10, 10]
    boxes = [right, left] if later_is_left else [left, right]
    gt = {
        "images": [{"id": 1, "width": 50, "height": 50}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [{"id": i + 1, "image_id": 1, "category_id": 1, "bbox": b,
                         "area": 100.0, "iscrowd": 0} for i, b in enumerate(boxes)],
    }
    results = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 10, 10], "score": 0.9},
               {"image_id": 1, "category_id": 1, "bbox": [7, 10, 10, 10], "score": 0.8}]
    assert_identical(gt, results)
    recall = numpy_arrays(gt, results).recall[:, 0, 0, -1]  # (T,) area all, 100 dets
    # IoU 2/3 with either for the first, 9/11 with the left for the second
    expected = [0.5] * 7 if later_is_left else [1.0] * 4 + [0.5] * 3
    assert recall.tolist() == expected + [0.0] * 3


def test_no_results_and_no_ground_truth():
    gt, results = random_set(5)
    assert_identical(gt, [])
    assert_identical(dict(gt, annotations=[]), results)


def test_pennfudan_bbox_and_proposals(pennfudan_val, bbox_results):
    gt = load_coco_gt(pennfudan_val).dataset
    assert_identical(gt, bbox_results)
    assert_identical(gt, bbox_results, use_cats=False, max_dets=(100, 300, 1000))


@pytest.mark.parametrize("seed", range(2))
def test_summary_stats_equal_pycocotools(seed):
    gt, results = random_set(300 + seed, many=True)
    _, _, stats = pycocotools_arrays(gt, results)
    result = evaluate_coco(load_coco_gt(copy.deepcopy(gt)), results, "bbox", backend="numpy")
    assert result.stats == [float(s) for s in stats]
    _, _, stats = pycocotools_arrays(gt, results, use_cats=False, max_dets=(100, 300, 1000))
    result = evaluate_coco(load_coco_gt(copy.deepcopy(gt)), results, "proposal",
                           max_dets=(100, 300, 1000), backend="numpy")
    assert result.stats == [float(s) for s in stats]


def test_box_iou_equals_pycocotools_bb_iou():
    rng = np.random.default_rng(0)
    det = np.round(rng.uniform(0, 50, size=(300, 4)), 1)
    gt = np.round(rng.uniform(0, 50, size=(7, 4)), 1)
    det[:5, 2] = 0.0  # zero width
    gt[0] = det[10]  # identical boxes
    crowd = np.array([0, 1, 0, 0, 1, 0, 0], dtype=np.uint8)
    expected = mask_util.iou(det.tolist(), gt.tolist(), crowd.tolist())  # (300, 7)
    d, g = np.meshgrid(np.arange(300), np.arange(7), indexing="ij")
    got = box_iou(det[d.ravel()], gt[g.ravel()], crowd[g.ravel()].astype(bool)).reshape(300, 7)
    assert np.array_equal(got, expected)
    assert got[10, 0] > 0.999 and (got[:5] == 0).all()  # not 1.0 exactly, in pycocotools too


@pytest.mark.parametrize("group_scale", [1, 2**40])  # packed keys, and the lexsort fallback
def test_score_order_is_a_stable_lexsort(group_scale):
    rng = np.random.default_rng(3)
    group = rng.integers(0, 5, 400) * group_scale
    scores = rng.integers(0, 6, 400) / 5  # many ties
    ties = rng.integers(0, 3, 400)
    assert np.array_equal(score_order(group, scores), np.lexsort((-scores, group)))
    assert np.array_equal(score_order(group, scores, ties), np.lexsort((ties, -scores, group)))
    assert score_order(group[:0], scores[:0]).tolist() == []


def test_rank_in_group():
    assert rank_in_group(np.array([0, 0, 1, 1, 1, 3, 5, 5])).tolist() == [0, 1, 0, 1, 2, 0, 0, 1]
    assert rank_in_group(np.zeros(0, dtype=np.int64)).tolist() == []


def test_suffix_max_and_needed_counts_against_plain_loops():
    rng = np.random.default_rng(1)
    group = np.sort(rng.integers(0, 6, 50))
    values = rng.integers(0, 5, 50) / 7
    expected = np.array([values[i:][group[i:] == group[i]].max() for i in range(50)])
    assert np.array_equal(_suffix_max(values, group), expected)
    rec_thrs = np.linspace(0.0, 1.00, 101)
    num_gt = np.array([[3, 0, 7]])
    needed = _counts_needed(num_gt, rec_thrs)
    for k, total in enumerate(num_gt[0]):
        if total:
            recalls = np.arange(total + 1) / total
            assert needed[0, k].tolist() == [
                next((c for c, r in enumerate(recalls) if r >= t), total + 1) for t in rec_thrs
            ]


def test_results_read_the_way_pycocotools_reads_them():
    """Float ids equal to an int, proposals with any category, bools: as pycocotools."""
    gt, results = random_set(9)
    loose = [dict(r, image_id=float(r["image_id"])) if i % 3 == 0 else r
             for i, r in enumerate(results)]
    assert_identical(gt, loose)
    named = [dict(r, category_id="thing") if i % 4 == 0 else r for i, r in enumerate(results)]
    assert_identical(gt, named, use_cats=False, max_dets=(100, 300, 1000))


def test_results_with_numpy_scalars():
    """Results made in Python often hold NumPy numbers; pycocotools takes them."""
    gt, results = random_set(10)
    typed = [dict(r, image_id=np.int64(r["image_id"]), score=np.float32(r["score"]),
                  bbox=[np.float64(v) for v in r["bbox"]]) for r in results]
    precision, recall, _ = pycocotools_arrays(gt, typed)
    acc = numpy_arrays(gt, typed)
    assert np.array_equal(acc.precision, precision) and np.array_equal(acc.recall, recall)


def test_check_results_returns_the_columns():
    gt, results = random_set(4)
    columns = check_results(results, load_coco_gt(gt), "bbox")
    assert len(columns) == len(results)
    assert columns.image_id.tolist() == [r["image_id"] for r in results]
    assert columns.category_id.tolist() == [r["category_id"] for r in results]
    assert columns.score.tolist() == [r["score"] for r in results]
    assert columns.bbox.tolist() == [[float(v) for v in r["bbox"]] for r in results]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image_id": True}, "result #3 has image_id True, which is not an image"),
        ({"bbox": [0, 0, 1, "2"]}, r"result #3 has bbox \[0, 0, 1, '2'\]"),
        ({"score": False}, "result #3 has score False"),
        ({"category_id": 99}, "result #3 has category_id 99"),
    ],
)
def test_the_numpy_backend_names_a_bad_result(change, message):
    gt, results = random_set(4)
    results = [*results[:3], dict(results[3], **change), *results[4:]]
    with pytest.raises(ResultsError, match=message):
        evaluate_coco(load_coco_gt(gt), results, "bbox", backend="numpy")
    assert issubclass(ResultsError, DetboxError)


def test_simulated_detections_on_a_crowded_mixed_set():
    gt, _ = random_set(12, images=10)
    results = simulate_detections(copy.deepcopy(gt), seed=2, false_positives=30.0)
    assert_identical(gt, results)
