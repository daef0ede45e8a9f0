import copy
import json
from pathlib import Path

import numpy as np
import pytest

from tpose.data import COCO17, LSP14, TopDownDataset
from tpose.data.coco import clean_box, load_coco_records
from tpose.data.detections import load_detection_records
from tpose.data.records import remap_keypoints, remap_records

from .conftest import COCO_DET, COCO_MINI, COCO_MINI_ANN, needs_coco_det, needs_coco_mini


def tiny_coco() -> dict:
    kpts = [0] * 51
    kpts[15:18] = [30, 40, 2]  # left shoulder
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [-5, 10, 50, 200], "area": 900, "iscrowd": 0,
             "keypoints": kpts},
            {"id": 11, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10], "area": 100, "iscrowd": 1,
             "keypoints": kpts},
            {"id": 12, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10], "area": 100, "iscrowd": 0,
             "keypoints": [0] * 51},
            {"id": 13, "image_id": 1, "category_id": 1, "bbox": [150, 5, 10, 10], "area": 100, "iscrowd": 0,
             "keypoints": kpts},
        ],
        "categories": [{"id": 1, "name": "person"}],
    }


@needs_coco_mini
def test_coco_mini_records() -> None:
    records, stats = load_coco_records(COCO_MINI_ANN, COCO_MINI / "train2017")
    raw = json.loads(COCO_MINI_ANN.read_text())
    expected = [a for a in raw["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0]
    assert stats["images"] == 80 and stats["annotations"] == 172
    assert stats["kept"] == len(records) == len(expected) == 86
    assert stats["crowd"] == sum(a["iscrowd"] for a in raw["annotations"])
    assert sum(stats[k] for k in ("kept", "crowd", "no_keypoints", "invalid_box", "not_person")) == 172
    by_id = {a["id"]: a for a in expected}
    rec = records[0]
    ann = by_id[rec.ann_id]
    np.testing.assert_allclose(rec.keypoints.reshape(-1), ann["keypoints"])
    assert rec.area == pytest.approx(ann["area"]) and rec.image_id == ann["image_id"]
    assert Path(rec.image_path).is_file()
    s = TopDownDataset(records[:2], COCO17, input_size=(64, 48), train=True, seed=0)[1]
    assert s["target"].shape == (17, 16, 12)


def test_clean_box_rule() -> None:
    np.testing.assert_allclose(clean_box([-5, 10, 50, 200], 100, 80), [0, 10, 49, 69])
    assert clean_box([150, 5, 10, 10], 100, 80) is None  # starts right of the image
    np.testing.assert_allclose(clean_box([5, 5, 0.5, 0.5], 100, 80), [5, 5, 0, 0])  # kept, as released


def test_selection_rules_and_stats(tmp_path: Path) -> None:
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(tiny_coco()))
    records, stats = load_coco_records(path, tmp_path)
    assert [r.ann_id for r in records] == [10]
    assert stats == {"images": 1, "annotations": 4, "kept": 1, "crowd": 1, "no_keypoints": 1, "invalid_box": 1,
                     "not_person": 0}
    np.testing.assert_allclose(records[0].box, [0, 10, 49, 69])
    assert records[0].image_path == str(tmp_path / "a.jpg")
    records, stats = load_coco_records(tiny_coco(), tmp_path, require_keypoints=False)
    assert [r.ann_id for r in records] == [10, 12]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["annotations"][1].update(keypoints=[1, 2, 3]), r"annotations\[1\] \(id=11\).*'keypoints'.*51"),
        (lambda d: d["annotations"][2].update(bbox=[1, 2, "x", 4]), r"annotations\[2\] \(id=12\).*'bbox'"),
        (lambda d: d["annotations"][0].pop("image_id"), r"annotations\[0\] \(id=10\).*'image_id'"),
        (lambda d: d["annotations"][3].update(image_id=99), r"annotations\[3\] \(id=13\).*image_id 99"),
        (lambda d: d["images"][0].pop("width"), r"images\[0\] \(id=1\).*'width'"),
        (lambda d: d.pop("annotations"), r"'annotations'"),
    ],
)
def test_malformed_file_names_the_record(tmp_path: Path, mutate, message: str) -> None:
    data = copy.deepcopy(tiny_coco())
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message):
        load_coco_records(path, tmp_path)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_coco_records(tmp_path / "missing.json", tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json.*JSON"):
        load_coco_records(tmp_path / "broken.json", tmp_path)


@needs_coco_det
def test_detection_records() -> None:
    dets = json.loads((COCO_DET / "test_coco_det_AP_H_56.json").read_text())
    records = load_detection_records(COCO_DET / "test_coco_det_AP_H_56.json", COCO_DET, COCO_DET / "test_coco.json", 17)
    assert len(records) == len(dets) == 118
    assert records[0].score == pytest.approx(dets[0]["score"])
    np.testing.assert_allclose(records[0].box, dets[0]["bbox"], rtol=1e-6)
    assert records[0].keypoints.shape == (17, 3) and not records[0].visible.any()
    assert all(Path(r.image_path).is_file() for r in records)
    confident = load_detection_records(dets, COCO_DET, {785: "000000000785.jpg", 40083: "000000040083.jpg",
                                                   196141: "000000196141.jpg", 197388: "000000197388.jpg"},
                                       17, min_score=0.5)
    assert len(confident) == sum(d["score"] >= 0.5 for d in dets)
    with pytest.raises(ValueError, match=r"detection \[0\].*image_id 785"):
        load_detection_records(dets, COCO_DET, {1: "x.jpg"}, 17)
    with pytest.raises(ValueError, match=r"detection \[1\].*'score'"):
        load_detection_records([dets[0], {"image_id": 785, "bbox": [0, 0, 1, 1]}], COCO_DET,
                               COCO_DET / "test_coco.json", 17)
    others = [dict(dets[0], category_id=3)]
    assert load_detection_records(others, COCO_DET, COCO_DET / "test_coco.json", 17) == []


def test_remap_coco_to_lsp() -> None:
    kpts = np.zeros((2, 17, 3), dtype=np.float32)
    kpts[:, :, 0] = np.arange(17)
    kpts[:, :, 2] = 2
    lsp = remap_keypoints(kpts, COCO17, LSP14)
    assert lsp.shape == (2, 14, 3)
    for name in ("left_shoulder", "right_ankle", "left_wrist", "right_hip"):
        assert lsp[0, LSP14.index(name), 0] == COCO17.index(name)
    assert (lsp[:, [LSP14.index("neck"), LSP14.index("head_top")], 2] == 0).all()
    assert (lsp[..., 2] > 0).sum() == 2 * 12
    back = remap_keypoints(lsp, "lsp14", "coco17")
    assert (back[0, :5, 2] == 0).all() and (back[0, 5:, 0] == np.arange(5, 17)).all()
    wrists = remap_keypoints(kpts[0], COCO17, LSP14, names=["left_wrist"])
    assert (wrists[:, 2] > 0).sum() == 1
    with pytest.raises(ValueError, match="neck"):
        remap_keypoints(kpts, COCO17, LSP14, names=["neck"])
    with pytest.raises(ValueError, match="17 joints"):
        remap_keypoints(kpts[:, :5], COCO17, LSP14)


@needs_coco_mini
def test_remap_records_for_an_lsp_model() -> None:
    records, _ = load_coco_records(COCO_MINI_ANN, COCO_MINI / "train2017")
    lsp = remap_records(records[:3], COCO17, LSP14)
    assert all(r.keypoints.shape == (14, 3) for r in lsp)
    np.testing.assert_array_equal(lsp[0].box, records[0].box)
    assert TopDownDataset(lsp, LSP14, input_size=(64, 48))[0]["target"].shape == (14, 16, 12)
