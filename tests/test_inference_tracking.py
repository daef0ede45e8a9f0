"""Tracker (ids, Hungarian matching, timeouts, constant-velocity prediction) and One-Euro keypoint smoothing,
on synthetic trajectories whose true ids and positions are known."""

from __future__ import annotations

import numpy as np
import pytest

from tpose.inference.smoothing import KeypointSmoother, OneEuroFilter
from tpose.inference.tracking import Tracker
from tpose.utils.boxes import box_iou

from .conftest import DETECTOR, VIDEO, needs_detector, needs_video

# ---------------------------------------------------------------- tracker


def _boxes(centres: np.ndarray, w: float = 50, h: float = 100) -> np.ndarray:
    c = np.asarray(centres, np.float64).reshape(-1, 2)
    return np.concatenate([c - [w / 2, h / 2], np.tile([w, h], (len(c), 1))], axis=1)


def test_box_iou_values() -> None:
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 0, 0]])
    np.testing.assert_allclose(box_iou(a, b)[0], [1.0, 50 / 150, 0.0, 0.0])


def test_ids_stable_for_people_moving_smoothly_in_any_input_order() -> None:
    rng = np.random.default_rng(0)
    tracker = Tracker(min_iou=0.3)
    starts = np.array([[100, 200], [300, 200], [500, 220]], np.float64)
    velocity = np.array([[4, 1], [-3, 2], [2, -4]], np.float64)
    first = tracker.update(_boxes(starts), np.ones(3), frame_index=0)
    assert first == [1, 2, 3]
    for f in range(1, 60):
        truth = starts + velocity * f + rng.normal(0, 1.0, (3, 2))
        order = rng.permutation(3)
        ids = tracker.update(_boxes(truth[order]), np.ones(3), frame_index=f)
        assert ids == [first[i] for i in order], f
    assert [t.id for t in tracker.tracks] == [1, 2, 3] and all(t.matched for t in tracker.tracks)
    assert all(t.hits == 60 for t in tracker.tracks)


@pytest.mark.parametrize("predict_frames", [0, 3])
def test_two_people_crossing_keep_their_ids(predict_frames: int) -> None:
    # A walks right along y = 100, B walks left along y = 160: their 50 x 100 boxes overlap by 40 px in y
    # and cross in x, so at the crossing A's box overlaps B's (IoU 0.25) less than A's own last box (0.67)
    tracker = Tracker(min_iou=0.3, predict_frames=predict_frames)
    ids_a, ids_b = set(), set()
    for f in range(40):
        a = [100 + 10 * f, 100]
        b = [490 - 10 * f, 160]
        order = [b, a] if f % 2 else [a, b]
        ids = tracker.update(_boxes(order), frame_index=f)
        id_a, id_b = (ids[1], ids[0]) if f % 2 else (ids[0], ids[1])
        ids_a.add(id_a)
        ids_b.add(id_b)
    assert ids_a == {1} and ids_b == {2}
    assert len(tracker.tracks) == 2


def test_hungarian_assignment_beats_greedy() -> None:
    # greedy would give D0 to T1 (best pair, IoU 0.6) and leave T2 without any allowed detection;
    # the optimal assignment T1-D1, T2-D0 keeps both tracks
    tracker = Tracker(min_iou=0.2)
    tracker.update(np.array([[0, 0, 100, 100], [60, 0, 100, 100]]), frame_index=0)  # ids 1 (T1), 2 (T2)
    d0 = np.array([25, 0, 100, 100])  # IoU 0.6 with T1, 0.48 with T2
    d1 = np.array([-40, 0, 100, 100])  # IoU 0.43 with T1, 0 with T2
    ious = box_iou(np.array([[0, 0, 100, 100], [60, 0, 100, 100]]), np.stack([d0, d1]))
    assert ious[0, 0] > ious[0, 1] > 0.2 and ious[1, 0] > 0.2 and ious[1, 1] == 0
    assert tracker.update(np.stack([d0, d1]), frame_index=1) == [2, 1]


def test_timeout_keeps_a_briefly_lost_track_and_drops_a_long_lost_one() -> None:
    tracker = Tracker(max_lost_frames=5)
    box = _boxes([[200, 200]])
    assert tracker.update(box, frame_index=0) == [1]
    for f in (1, 2, 3):
        assert tracker.update(np.zeros((0, 4)), frame_index=f) == []
    assert [t.lost_frames for t in tracker.tracks] == [3] and not tracker.tracks[0].matched
    assert tracker.update(box, frame_index=5) == [1]  # lost for 4 frames (<= 5): same id
    assert tracker.update(np.zeros((0, 4)), frame_index=10) == [] and tracker.removed == []  # lost 5: still kept
    assert tracker.update(np.zeros((0, 4)), frame_index=11) == [] and tracker.removed == [1]  # lost 6: dropped
    assert tracker.tracks == []
    assert tracker.update(box, frame_index=12) == [2]  # the same place, but a new person


def test_timeout_in_seconds_with_timestamps() -> None:
    tracker = Tracker(max_lost_frames=None, max_lost_seconds=0.5)
    box = _boxes([[50, 50]])
    assert tracker.update(box, timestamp=0.0) == [1]
    assert tracker.update(box, timestamp=0.45) == [1]
    tracker.update(np.zeros((0, 4)), timestamp=0.9)  # 0.45 s since the match: kept
    assert tracker.removed == []
    tracker.update(np.zeros((0, 4)), timestamp=1.0)  # 0.55 s: dropped
    assert tracker.removed == [1]
    assert tracker.update(box, timestamp=1.1) == [2]
    with pytest.raises(ValueError, match="timestamp with every frame"):
        tracker.update(box)
    with pytest.raises(ValueError, match="needs timestamps"):
        Tracker(max_lost_seconds=1.0).update(box, frame_index=0)


def test_frame_order_and_input_checks() -> None:
    tracker = Tracker()
    tracker.update(_boxes([[10, 10]]), frame_index=3)
    with pytest.raises(ValueError, match="must increase"):
        tracker.update(_boxes([[10, 10]]), frame_index=3)
    assert tracker.update(_boxes([[10, 10]])) == [1]  # frame 4 implied
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        tracker.update(_boxes([[0, 0], [100, 100]]), np.ones(1))
    with pytest.raises(ValueError, match="keypoints must be"):
        tracker.update(_boxes([[0, 0]]), keypoints=np.zeros((2, 17, 3)))
    tracker.reset()
    assert tracker.tracks == [] and tracker.update(_boxes([[10, 10]]), frame_index=0) == [1]


def test_constant_velocity_prediction_between_sparse_detections() -> None:
    # 40 x 80 person moving 20 px per frame: a jump of 4 frames (80 px) leaves no overlap with the old box
    def truth(f: int) -> np.ndarray:
        return _boxes([[100 + 20 * f, 300 - 5 * f]], 40, 80)

    detect_at = [0, 1] + list(range(5, 40, 4))
    with_motion = Tracker(min_iou=0.3, max_lost_frames=6, predict_frames=4)
    without = Tracker(min_iou=0.3, max_lost_frames=6, predict_frames=0)
    ids_with, ids_without = set(), set()
    for f in range(40):
        if f in detect_at:
            ids_with.update(with_motion.update(truth(f), frame_index=f))
            ids_without.update(without.update(truth(f), frame_index=f))
        else:
            tracks = with_motion.predict(frame_index=f)
            assert len(tracks) == 1 and tracks[0].lost_frames >= 1
            np.testing.assert_allclose(tracks[0].box, truth(f)[0], atol=1e-3)  # exactly on the true path
            stale = without.predict(frame_index=f)[0].box
            assert np.abs(stale - truth(f)[0]).max() > 10  # without a motion model the box stays behind
    assert ids_with == {1}
    assert len(ids_without) > 5  # each sparse detection started a new person
    np.testing.assert_allclose(with_motion.tracks[0].velocity, [20, -5], atol=1e-6)


def test_prediction_stops_after_predict_frames() -> None:
    tracker = Tracker(predict_frames=2, max_lost_frames=10)
    tracker.update(_boxes([[100, 100]]), frame_index=0)
    tracker.update(_boxes([[110, 100]]), frame_index=1)  # 10 px per frame
    xs = [tracker.predict(frame_index=f)[0].box[0] + 25 for f in range(2, 7)]  # box centres
    np.testing.assert_allclose(xs, [120, 130, 130, 130, 130], atol=1e-4)


def test_velocity_is_per_second_with_timestamps() -> None:
    tracker = Tracker(predict_frames=3)
    tracker.update(_boxes([[100, 100]]), timestamp=0.0)
    tracker.update(_boxes([[104, 100]]), timestamp=0.04)  # 100 px/s
    np.testing.assert_allclose(tracker.tracks[0].velocity, [100, 0], atol=1e-6)
    centre = tracker.predict(timestamp=0.10)[0].box[0] + 25
    assert centre == pytest.approx(110.0, abs=1e-3)


def test_keypoint_oks_separates_people_sharing_a_box() -> None:
    # two people in the very same box (one behind the other): IoU cannot tell them apart, keypoints can
    rng = np.random.default_rng(1)
    box = _boxes([[200, 200]], 100, 200)
    pose_a = np.concatenate([rng.uniform([150, 100], [250, 300], (17, 2)), np.ones((17, 1))], axis=1)
    pose_b = np.concatenate([rng.uniform([150, 100], [250, 300], (17, 2)), np.ones((17, 1))], axis=1)
    tracker = Tracker(oks_weight=0.5)
    assert tracker.update(np.concatenate([box, box]), keypoints=np.stack([pose_a, pose_b]), frame_index=0) == [1, 2]
    for f in range(1, 8):
        jitter = rng.normal(0, 1.5, (2, 17, 2))
        a, b = pose_a.copy(), pose_b.copy()
        a[:, :2] += jitter[0]
        b[:, :2] += jitter[1]
        swapped = f % 2 == 1
        kpts = np.stack([b, a] if swapped else [a, b])
        ids = tracker.update(np.concatenate([box, box]), keypoints=kpts, frame_index=f)
        assert ids == ([2, 1] if swapped else [1, 2]), f


@needs_detector
@needs_video
def test_real_video_people_keep_their_ids() -> None:
    import cv2

    from tpose.inference.detector import YoloxDetector

    detector = YoloxDetector(DETECTOR, input_size=416, threads=1)
    tracker = Tracker(min_iou=0.3, max_lost_frames=5, predict_frames=3)
    cap = cv2.VideoCapture(str(VIDEO))
    per_frame = []
    try:
        for f in range(30):
            ok, bgr = cap.read()
            assert ok, f"cannot read frame {f} of {VIDEO}"
            found = detector(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            per_frame.append(tracker.update(found.boxes, found.scores, frame_index=f, timestamp=f / 10))
    finally:
        cap.release()
    assert len(per_frame[0]) >= 3  # several walkers from the first frame
    assert all(len(set(ids)) == len(ids) for ids in per_frame)
    distinct = set().union(*map(set, per_frame))
    assert len(distinct) <= 2 * max(map(len, per_frame))  # no new id per frame for the same people
    # most of the people of frame 0 still carry their id 2 s later
    assert len(set(per_frame[0]) & set(per_frame[20])) >= len(per_frame[0]) - 1


# ---------------------------------------------------------------- One-Euro filter and the keypoint smoother


def test_one_euro_constant_signal_is_unchanged() -> None:
    flt = OneEuroFilter(min_cutoff=1.0, beta=0.05)
    value = np.array([[123.25, -7.5], [0.0, 640.0]])
    for i in range(100):
        np.testing.assert_allclose(flt(value, i / 30), value, rtol=0, atol=1e-9)
    scalar = OneEuroFilter()
    assert [float(scalar(3.5, t)) for t in (0.0, 0.1, 0.2)] == pytest.approx([3.5, 3.5, 3.5])


def test_one_euro_reduces_jitter() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(300) / 30
    raw = 200 + rng.normal(0, 2.0, t.shape)
    stds = {}
    for beta in (0.05, 0.0):
        flt = OneEuroFilter(min_cutoff=1.0, beta=beta)
        out = np.array([float(flt(x, ti)) for x, ti in zip(raw, t, strict=True)])
        stds[beta] = out[30:].std()
        assert abs(out[30:].mean() - 200) < 0.5
    raw_std = raw[30:].std()
    assert stds[0.05] < 0.5 * raw_std, (raw_std, stds)  # jitter makes some apparent speed, which opens the cutoff
    assert stds[0.0] < 0.35 * raw_std, (raw_std, stds)  # a fixed 1 Hz cutoff removes more (and lags more)


def _ramp_lag(beta: float, fps: float, speed: float = 300.0) -> float:
    flt = OneEuroFilter(min_cutoff=1.0, beta=beta, d_cutoff=1.0)
    t = np.arange(int(2 * fps)) / fps
    out = [float(flt(speed * ti, ti)) for ti in t]
    return speed * t[-1] - out[-1]


def test_one_euro_fast_motion_follows_with_small_lag() -> None:
    # 300 px/s: the speed-adaptive cutoff keeps the lag to a few pixels; a plain 1 Hz low-pass lags ~50 px
    lag_adaptive = _ramp_lag(beta=0.05, fps=30)
    lag_plain = _ramp_lag(beta=0.0, fps=30)
    assert 0 < lag_adaptive < 5, lag_adaptive
    assert lag_plain > 30, lag_plain
    # time-based: the lag in pixels hardly depends on the frame rate
    assert _ramp_lag(beta=0.05, fps=60) == pytest.approx(lag_adaptive, rel=0.3)


def test_one_euro_timestamps_and_missing_values() -> None:
    flt = OneEuroFilter(min_cutoff=1.0)
    flt(np.array([0.0, 0.0]), 0.0)
    first = flt(np.array([10.0, 10.0]), 0.1)
    assert 0 < first[0] < 10
    np.testing.assert_allclose(flt(np.array([99.0, 99.0]), 0.1), first)  # the same time again: no change
    out = flt(np.array([np.nan, 10.0]), 0.2)
    assert np.isnan(out[0]) and 0 < out[1] < 10
    back = flt(np.array([50.0, 10.0]), 0.3)
    assert back[0] == 50.0  # a value that was missing restarts instead of being dragged from 0
    with pytest.raises(ValueError, match="earlier"):
        flt(np.array([1.0, 1.0]), 0.25)
    with pytest.raises(ValueError, match="shape"):
        flt(np.zeros(3), 0.5)


def _pose(x: float) -> np.ndarray:
    k = np.zeros((17, 3))
    k[:, 0] = x + np.arange(17)
    k[:, 1] = 100 + 2 * np.arange(17)
    k[:, 2] = 0.9
    return k


def test_keypoint_smoother_per_track_state_and_forgetting() -> None:
    sm = KeypointSmoother(min_cutoff=1.0, beta=0.0)
    sm.smooth([1, 2], np.stack([_pose(0), _pose(500)]), 0.0)
    out = sm.smooth([1, 2], np.stack([_pose(30), _pose(500)]), 1 / 30)
    assert 0 < out[0, 0, 0] < 30  # track 1 is smoothed towards its own past...
    np.testing.assert_allclose(out[1], _pose(500))  # ...and track 2 is not disturbed by it
    np.testing.assert_allclose(out[:, :, 2], 0.9)  # scores pass through
    assert sm.track_ids == [1, 2]
    sm.forget([1])
    assert sm.track_ids == [2]
    np.testing.assert_allclose(sm(1, _pose(300), 2 / 30), _pose(300))  # fresh filter: no drag from x = 30
    sm.retain([1])
    assert sm.track_ids == [1] and len(sm) == 1
    dragged = sm(1, _pose(0), 3 / 30)
    assert dragged[0, 0] > 100  # without forgetting, a stale state drags the new person
    sm.reset()
    assert len(sm) == 0


def test_keypoint_smoother_switch_and_low_scores() -> None:
    off = KeypointSmoother(enabled=False)
    for i, x in enumerate((0, 40, 80)):
        np.testing.assert_array_equal(off(7, _pose(x), i / 30), _pose(x))
    assert len(off) == 0
    sm = KeypointSmoother(min_score=0.5, beta=0.0)
    sm(1, _pose(0), 0.0)
    low = _pose(30)
    low[0, 2] = 0.1
    out = sm(1, low, 1 / 30)
    np.testing.assert_allclose(out[0], low[0])  # below min_score: as given
    assert 0 < out[1, 0] < 31
    with pytest.raises(ValueError, match="repeated track ids"):
        sm.smooth([1, 1], np.stack([_pose(0), _pose(1)]), 0.1)


def test_one_box_module_serves_detector_tracker_and_evaluation() -> None:
    """The detector's NMS, the tracker's IoU and the evaluation's enlargement are the same functions."""
    from tpose.inference import detector, end_to_end, tracking, video
    from tpose.utils import boxes

    assert tracking.box_iou is video.box_iou is end_to_end.box_iou is boxes.box_iou
    assert detector.nms is boxes.nms and end_to_end.enlarge_box is boxes.enlarge_box
    np.testing.assert_allclose(boxes.xyxy_to_xywh(np.array([[10, 20, 30, 25], [5, 5, 1, 1]])),
                               [[10, 20, 20, 5], [5, 5, 0, 0]])
