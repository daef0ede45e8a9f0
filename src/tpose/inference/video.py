"""People across the frames of a video or a camera: detection every N frames, boxes carried by the poses
in between, an id per person, and keypoints smoothed over time.

On a frame with detection, the detector's boxes go to the pose model and the tracker matches them to the
live tracks (IoU, blended with OKS of the poses). On the frames between, each live track's box keeps the
size the detector gave it and moves to the centre of its previous pose's confident keypoints: people move
little from one frame to the next and the crop keeps a quarter of margin, so the pose model re-finds them
without the detector. A track whose pose
loses confidence is dropped after ``max_lost_frames``. The smoother (One-Euro, per track and keypoint)
runs on each person's keypoints with the frame's time stamp.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ..utils.boxes import box_iou
from .options import TrackingOptions
from .predictor import PersonPose, PosePredictor
from .smoothing import KeypointSmoother
from .tracking import Tracker


def keypoint_box(person: PersonPose, threshold: float, padding: float) -> np.ndarray | None:
    """(x, y, w, h) around the keypoints scoring at least ``threshold``, enlarged ``padding`` times about its
    centre; None when fewer than two keypoints are that confident."""
    good = person.scores >= threshold
    if good.sum() < 2:
        return None
    pts = person.keypoints[good]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre, size = (lo + hi) / 2, np.maximum(hi - lo, 1.0) * padding
    return np.array([*(centre - size / 2), *size], dtype=np.float32)


class PoseTracker:
    """Persons with stable ids for consecutive frames (see the module doc); one per video or camera."""

    def __init__(self, predictor: PosePredictor, options: TrackingOptions | None = None) -> None:
        self.predictor = predictor
        self.options = options or TrackingOptions()
        o = self.options
        self.tracker = Tracker(min_iou=o.min_iou, max_lost_frames=o.max_lost_frames, oks_weight=o.oks_weight,
                               predict_frames=o.predict_frames,
                               oks_sigmas=predictor.keypoint_set.sigmas, keypoint_threshold=o.keypoint_threshold,
                               static_frames=o.static_frames, static_score=o.static_score,
                               static_motion=o.static_motion)
        self.smoother = KeypointSmoother(min_cutoff=o.smooth_min_cutoff, beta=o.smooth_beta, enabled=o.smooth)
        self._previous: dict[int, PersonPose] = {}
        self.detections_run = 0

    def reset(self) -> None:
        """Forget every person (a new video)."""
        self.tracker.reset()
        self.smoother.reset()
        self._previous = {}

    def _carried_boxes(self) -> tuple[np.ndarray, np.ndarray]:
        o = self.options
        boxes, scores = [], []
        for person in self._previous.values():
            box = keypoint_box(person, o.keypoint_threshold, 1.0)
            size = person.box[2:].astype(np.float32)  # the size the detector saw; only the centre moves
            centre = person.box[:2] + size / 2 if box is None else box[:2] + box[2:] / 2
            boxes.append(np.concatenate([centre - size / 2, size]))
            scores.append(person.box_score)
        return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32)

    def __call__(self, image: np.ndarray, frame_index: int, timestamp: float) -> list[PersonPose]:
        """The persons of one RGB frame, with ``track_id`` set when tracking is on."""
        o = self.options
        detect = frame_index % o.detect_every == 0 or not self._previous
        if detect:
            t0 = time.perf_counter()
            found = self.predictor.detect(image)
            self.predictor.timings["detect"] += time.perf_counter() - t0
            boxes, scores = found.boxes, found.scores
            self.detections_run += 1
        else:
            boxes, scores = self._carried_boxes()
        persons = self.predictor.predict_rgb([image], [boxes], [scores], [f"frame {frame_index}"])[0]
        if not detect:  # a carried box that no longer holds a person: its keypoints lose confidence
            persons = [p for p in persons if float(np.mean(p.scores)) >= o.min_person_score]
        if not o.track:
            self._previous = dict(enumerate(persons))
            return persons
        t0 = time.perf_counter()
        ids = self.tracker.update(
            np.asarray([p.box for p in persons], np.float32).reshape(-1, 4),
            np.asarray([p.score for p in persons], np.float32),
            np.stack([np.concatenate([p.keypoints, p.scores[:, None]], 1) for p in persons]) if persons else None,
            frame_index=frame_index, timestamp=timestamp)
        self.smoother.forget(self.tracker.removed)
        out = []
        static = self.tracker.static_ids
        for person, track_id in zip(persons, ids, strict=True):
            if track_id in static:  # a low-score box that never moves: no person
                continue
            if o.smooth:
                kpts = np.concatenate([person.keypoints, person.scores[:, None]], axis=1)
                person = replace(person, keypoints=self.smoother(track_id, kpts, timestamp)[:, :2].astype(np.float32))
            out.append(replace(person, track_id=int(track_id)))
        self._previous = {p.track_id: p for p in out}  # type: ignore[misc]
        self.predictor.timings["track"] += time.perf_counter() - t0
        return out


def agreement(reference: list[list[PersonPose]], other: list[list[PersonPose]], threshold: float = 0.3) -> dict:
    """How far a cheaper run (e.g. detection every N frames) is from a reference run, frame by frame.

    Persons are compared by the boxes of their confident keypoints (both runs measured alike, whatever box
    they were cropped from), matched greedily by IoU >= 0.3. Returns the median box IoU of matched persons,
    their median keypoint distance in pixels and as a share of the person's height, and the share of
    reference persons without a match.
    """
    ious, dists, rel, missed, total = [], [], [], 0, 0
    for ref, got in zip(reference, other, strict=True):
        ref_boxes = [keypoint_box(p, threshold, 1.0) for p in ref]
        got_boxes = [keypoint_box(p, threshold, 1.0) for p in got]
        empty = np.zeros(4)
        pair_iou = box_iou(np.array([empty if a is None else a for a in ref_boxes]).reshape(-1, 4),
                           np.array([empty if b is None else b for b in got_boxes]).reshape(-1, 4))
        taken: set[int] = set()
        for i, (p, a) in enumerate(zip(ref, ref_boxes, strict=True)):
            if a is None:
                continue
            total += 1
            best, best_iou = None, 0.3
            for j, b in enumerate(got_boxes):
                if b is None or j in taken:
                    continue
                iou = float(pair_iou[i, j])
                if iou >= best_iou:
                    best, best_iou = j, iou
            if best is None:
                missed += 1
                continue
            taken.add(best)
            ious.append(best_iou)
            both = (p.scores >= threshold) & (got[best].scores >= threshold)
            if both.any():
                d = float(np.median(np.linalg.norm(p.keypoints[both] - got[best].keypoints[both], axis=1)))
                dists.append(d)
                rel.append(d / max(float(a[3]), 1.0))
    return {
        "persons": total,
        "unmatched_share": missed / total if total else 0.0,
        "median_box_iou": float(np.median(ious)) if ious else None,
        "median_keypoint_distance_px": float(np.median(dists)) if dists else None,
        "median_keypoint_distance_of_height": float(np.median(rel)) if rel else None,
    }


