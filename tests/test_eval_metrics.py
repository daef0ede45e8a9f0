"""PCK / PCKh, OKS, OKS-NMS and rescoring on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from tpose.data.keypoint_sets import COCO17, LSP14, MPII16
from tpose.engine.metrics import (
    head_segment_length,
    joint_box_size,
    mpii_head_size,
    oks,
    oks_nms,
    pck,
    pckh,
    rescore,
)


def test_pck_counts_only_visible_joints_and_weights_the_mean_by_count() -> None:
    gt = np.zeros((2, 3, 2))
    pred = gt.copy()
    pred[0, 0] = [3.0, 4.0]  # error 5
    pred[1, 0] = [6.0, 8.0]  # error 10
    pred[1, 1] = [100.0, 0.0]  # invisible: ignored however wrong
    visible = np.array([[1, 1, 0], [1, 0, 0]])
    per_joint, mean = pck(pred, gt, visible, normalizer=np.array([30.0, 30.0]), threshold=0.2)  # tolerance 6 px
    assert per_joint[0] == pytest.approx(0.5)
    assert per_joint[1] == pytest.approx(1.0)
    assert np.isnan(per_joint[2])
    assert mean == pytest.approx(2 / 3)  # 2 of the 3 visible joints, not the mean of per-joint values (0.75)


def test_pck_threshold_is_inclusive_and_zero_normaliser_skips_the_person() -> None:
    gt = np.zeros((2, 1, 2))
    pred = np.full((2, 1, 2), [6.0, 0.0])
    per_joint, mean = pck(pred, gt, np.ones((2, 1)), np.array([30.0, 0.0]), threshold=0.2)
    assert per_joint[0] == 1.0 and mean == 1.0
    _, none = pck(pred, gt, np.zeros((2, 1)), np.array([30.0, 30.0]))
    assert np.isnan(none)
    with pytest.raises(ValueError, match="same shape"):
        pck(pred[:, :, :1], gt, np.ones((2, 1)), np.ones(2))


def test_joint_box_size_uses_the_larger_side_of_visible_joints() -> None:
    kpts = np.array([[[10, 10], [50, 30], [-500, -500]], [[0, 0], [0, 0], [0, 0]]], dtype=float)
    visible = np.array([[1, 1, 0], [0, 0, 0]])
    np.testing.assert_allclose(joint_box_size(kpts, visible), [40.0, 0.0])


def test_head_sizes() -> None:
    np.testing.assert_allclose(mpii_head_size(np.array([[0, 0, 30, 40]])), [0.6 * 50])
    kpts = np.zeros((2, 14, 2))
    kpts[:, LSP14.index("head_top")] = [0, -20]
    vis = np.ones((2, 14))
    vis[1, LSP14.index("neck")] = 0
    np.testing.assert_allclose(head_segment_length(kpts, vis, LSP14), [20.0, 0.0])
    mpii = np.zeros((1, 16, 2))
    mpii[0, MPII16.index("head_top")] = [0, 12]
    np.testing.assert_allclose(head_segment_length(mpii, np.ones((1, 16)), MPII16), [12.0])
    with pytest.raises(ValueError, match="head boxes"):
        head_segment_length(np.zeros((1, 17, 2)), np.ones((1, 17)), COCO17)
    gt = np.zeros((1, 16, 2))
    pred = gt + [5.0, 0.0]
    _, at_half = pckh(pred, gt, np.ones((1, 16)), np.array([12.0]))  # tolerance 6 px
    assert at_half == 1.0


def test_oks_matches_the_coco_formula() -> None:
    sigmas = np.array(COCO17.sigmas)
    gt = np.zeros((1, 17, 3))
    gt[..., 2] = 2
    gt[0, :5, 2] = 0  # unlabelled face joints do not count
    pred = np.zeros((2, 17, 2))
    pred[1, :, 0] = 3.0
    area = 1000.0
    sim = oks(pred, gt, np.array([area]), sigmas)
    assert sim.shape == (2, 1)
    assert sim[0, 0] == pytest.approx(1.0)
    expected = np.mean(np.exp(-9.0 / (2 * area * (2 * sigmas[5:]) ** 2)))
    assert sim[1, 0] == pytest.approx(expected)
    assert oks(pred, np.zeros((1, 17, 3)), np.array([area]), sigmas)[0, 0] == 0.0  # nothing labelled
    with pytest.raises(ValueError, match="sigmas"):
        oks(pred, gt, np.array([area]), sigmas[:5])


def _person(offset: float, score: float, area: float = 4000.0) -> dict:
    rng = np.random.default_rng(0)
    kpts = rng.uniform(0, 60, (17, 2)) + offset
    return {"keypoints": np.concatenate([kpts, np.ones((17, 1))], 1), "score": score, "area": area}


def test_oks_nms_drops_near_duplicates_of_better_persons() -> None:
    persons = [_person(0.0, 0.5), _person(0.5, 0.9), _person(300.0, 0.7), _person(0.2, 0.1)]
    assert oks_nms(persons, thresh=0.9) == [1, 2]
    assert oks_nms(persons, thresh=1.0) == [1, 2, 0, 3]  # nothing has OKS above 1
    assert oks_nms([]) == []


def test_rescore_multiplies_box_score_by_mean_confident_keypoint_score() -> None:
    scores = np.array([[0.9, 0.5, 0.1, 0.2], [0.1, 0.0, 0.2, 0.15]])
    out = rescore(scores, np.array([0.5, 1.0]), thresh=0.2)
    np.testing.assert_allclose(out, [0.5 * 0.7, 0.0])  # 0.2 itself is not above the threshold
