"""Multi-person tracking for video: a stable integer id per person, frame to frame.

Tracks are matched to the new frame's people by box IoU (optionally blended with keypoint OKS) with the
Hungarian algorithm, so two people crossing do not swap ids as long as their boxes tell them apart. A
person that matches no track starts a new one (ids are never reused); a track unmatched for longer than
the timeout is dropped. With ``predict_frames`` > 0 a track's box moves at its recent velocity for that
many frames after it was last seen, which both helps matching people who move fast and lets detection run
every N frames with :meth:`Tracker.predict` giving the boxes in between::

    tracker = Tracker(max_lost_frames=10, predict_frames=5)
    for i, frame in enumerate(frames):
        if i % 3 == 0:
            found = detector(frame)
            ids = tracker.update(found.boxes, found.scores, frame_index=i)
        else:
            tracks = tracker.predict(frame_index=i)  # boxes (and ids) to run the pose model on

Boxes are (x, y, w, h) in pixels. Time is ``timestamp`` in seconds when given (velocities per second), else
the frame index (velocities per frame); frame indices count frames for the frame timeout either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..data.keypoint_sets import default_keypoint_set
from ..utils.boxes import box_iou

_FORBIDDEN = 1e6  # the assignment cost of a pair below the IoU gate


@dataclass
class Track:
    """One tracked person. ``box`` is the matched box of the latest frame, or the predicted one when unmatched."""

    id: int
    box: np.ndarray
    score: float
    keypoints: np.ndarray | None
    first_frame: int
    last_frame: int  # frame index of the latest match
    last_time: float  # clock of the latest match: seconds with timestamps, else the frame index
    hits: int = 1  # frames matched so far
    lost_frames: int = 0  # frames since the latest match, as of the latest call (0: matched in it)
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float64))  # of the box centre
    best_score: float = 0.0  # the highest score of any match
    drift: float = 0.0  # how far the box centre has strayed from where the track began, in pixels (max)
    static: bool = False  # a low-score box that never moves (a sign, a post): see Tracker's static_* rule
    _observed: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float64), repr=False)  # cx, cy, w, h
    _origin: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float64), repr=False)  # where it began

    @property
    def matched(self) -> bool:
        """Whether the latest call matched this track to a detection."""
        return self.lost_frames == 0


def keypoint_oks(
    a: np.ndarray, b: np.ndarray, areas: np.ndarray, sigmas: np.ndarray, threshold: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """OKS [N, M] between keypoint sets ``a`` [N, K, 2|3] and ``b`` [M, K, 2|3], with ``areas`` [N] of a's boxes.

    COCO's exp(-d^2 / (2 * area * (2 sigma)^2)), averaged over the joints whose score (third column, if any)
    exceeds ``threshold`` on both sides. Also returns which pairs share at least one such joint.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    va = a[..., 2] > threshold if a.shape[-1] > 2 else np.ones(a.shape[:2], bool)
    vb = b[..., 2] > threshold if b.shape[-1] > 2 else np.ones(b.shape[:2], bool)
    both = va[:, None, :] & vb[None, :, :]  # [N, M, K]
    d2 = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(-1)
    var = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    e = np.exp(-d2 / (2 * np.maximum(areas, 1.0)[:, None, None] * var[None, None, :]))
    count = both.sum(-1)
    sim = np.where(count > 0, (e * both).sum(-1) / np.maximum(count, 1), 0.0)
    return sim, count > 0


def _centre_size(box: np.ndarray) -> np.ndarray:
    x, y, w, h = (float(v) for v in box)
    return np.array([x + w / 2, y + h / 2, w, h], dtype=np.float64)


def _to_box(state: np.ndarray) -> np.ndarray:
    cx, cy, w, h = state
    return np.array([cx - w / 2, cy - h / 2, w, h], dtype=np.float32)


class Tracker:
    """Stable ids for the people of a video; feed it each frame's boxes (see the module docstring).

    - ``min_iou``: a detection may take over a track only if the IoU of its box with the track's (predicted)
      box is at least this; below it, it starts a new track.
    - ``max_lost_frames`` / ``max_lost_seconds``: a track unmatched for more than this many frames / seconds
      is dropped (None: no limit of that kind; seconds need timestamps). With detection every N frames and
      :meth:`predict` in between, ``max_lost_frames`` must be at least N.
    - ``predict_frames``: for how many frames after its last match a track's box keeps moving at its
      velocity (a smoothed constant-velocity estimate of the box centre; the size is held). 0: the box stays
      where it was last seen.
    - ``oks_weight``: with keypoints on both sides, the assignment uses (1 - w) * IoU + w * OKS (the IoU gate
      still applies), which separates overlapping people by pose; ``oks_sigmas`` per keypoint (default:
      the built-in set with that many keypoints, e.g. COCO-17), ``keypoint_threshold`` the score that
      counts a keypoint as seen.
    - ``velocity_smoothing``: the weight of the newest velocity measurement (1: no smoothing).
    - ``static_frames`` / ``static_score`` / ``static_motion``: a track matched for at least ``static_frames``
      frames whose score never reached ``static_score`` and whose box centre stayed within ``static_motion``
      of its height from where it began is ``static`` (a signpost the detector half-believes is a person);
      its id is listed in :attr:`static_ids` for the caller to drop. 0 frames: the rule is off.
    """

    def __init__(
        self,
        min_iou: float = 0.3,
        max_lost_frames: int | None = 30,
        max_lost_seconds: float | None = None,
        predict_frames: int = 0,
        oks_weight: float = 0.0,
        oks_sigmas: Sequence[float] | None = None,
        keypoint_threshold: float = 0.2,
        velocity_smoothing: float = 0.5,
        static_frames: int = 0,
        static_score: float = 0.3,
        static_motion: float = 0.1,
    ) -> None:
        if not 0.0 <= min_iou <= 1.0:
            raise ValueError(f"min_iou must be in [0, 1], got {min_iou}")
        if max_lost_frames is not None and max_lost_frames < 0:
            raise ValueError(f"max_lost_frames must be >= 0 or None, got {max_lost_frames}")
        if max_lost_seconds is not None and max_lost_seconds < 0:
            raise ValueError(f"max_lost_seconds must be >= 0 or None, got {max_lost_seconds}")
        if predict_frames < 0:
            raise ValueError(f"predict_frames must be >= 0, got {predict_frames}")
        if not 0.0 <= oks_weight <= 1.0:
            raise ValueError(f"oks_weight must be in [0, 1], got {oks_weight}")
        if not 0.0 < velocity_smoothing <= 1.0:
            raise ValueError(f"velocity_smoothing must be in (0, 1], got {velocity_smoothing}")
        self.min_iou = float(min_iou)
        self.max_lost_frames = max_lost_frames
        self.max_lost_seconds = max_lost_seconds
        self.predict_frames = int(predict_frames)
        self.oks_weight = float(oks_weight)
        self.oks_sigmas = None if oks_sigmas is None else np.asarray(oks_sigmas, dtype=np.float64)
        self.keypoint_threshold = float(keypoint_threshold)
        self.velocity_smoothing = float(velocity_smoothing)
        if static_frames < 0:
            raise ValueError(f"static_frames must be >= 0 (0: off), got {static_frames}")
        self.static_frames, self.static_score, self.static_motion = int(static_frames), static_score, static_motion
        self.reset()

    def reset(self) -> None:
        """Forget every track (a new video); ids start again at 1."""
        self._tracks: list[Track] = []
        self._next_id = 1
        self._frame: int | None = None
        self._uses_timestamps: bool | None = None
        self.removed: list[int] = []  # ids dropped by the latest call (e.g. for KeypointSmoother.forget)

    @property
    def next_id(self) -> int:
        """The id the next new track will get (so ``next_id - 1`` tracks were started)."""
        return self._next_id

    @property
    def static_ids(self) -> set[int]:
        """Ids of the live tracks that the static rule (see the class doc) calls no person."""
        return {t.id for t in self._tracks if t.static}

    @property
    def tracks(self) -> list[Track]:
        """The live tracks (matched in the latest frame or lost for less than the timeout), oldest first."""
        return list(self._tracks)

    def _advance(self, frame_index: int | None, timestamp: float | None) -> tuple[int, float]:
        """Move the clock to this frame: check the frame order and time units, drop timed-out tracks."""
        frame = (0 if self._frame is None else self._frame + 1) if frame_index is None else int(frame_index)
        if self._frame is not None and frame <= self._frame:
            raise ValueError(f"frame_index must increase: got {frame} after {self._frame}")
        has_time = timestamp is not None
        if self._uses_timestamps is None:
            self._uses_timestamps = has_time
        elif self._uses_timestamps != has_time:
            raise ValueError("give a timestamp with every frame or with none (the tracker's time unit would change)")
        if self.max_lost_seconds is not None and not has_time:
            raise ValueError("max_lost_seconds needs timestamps (seconds) with each frame")
        now = float(timestamp) if has_time else float(frame)
        self._frame = frame
        kept, self.removed = [], []
        for t in self._tracks:
            lost = frame - t.last_frame
            too_long = (self.max_lost_frames is not None and lost > self.max_lost_frames) or (
                self.max_lost_seconds is not None and now - t.last_time > self.max_lost_seconds)
            if too_long:
                self.removed.append(t.id)
            else:
                kept.append(t)
        self._tracks = kept
        return frame, now

    def _predicted_box(self, track: Track, frame: int, now: float) -> np.ndarray:
        """The track's box at this frame: its last box moved at constant velocity for at most ``predict_frames``."""
        lost = frame - track.last_frame
        state = track._observed.copy()
        if self.predict_frames > 0 and lost > 0:
            # elapsed time capped at predict_frames frames (frame length estimated from the gap itself)
            dt = (now - track.last_time) * min(1.0, self.predict_frames / lost)
            state[:2] += track.velocity * dt
        return _to_box(state)

    def predict(self, frame_index: int | None = None, timestamp: float | None = None) -> list[Track]:
        """Advance to a frame without detections: every live track's ``box`` becomes its predicted box.

        The frame counts towards the timeouts. Returns the live tracks (ids and boxes to run the pose model on).
        """
        frame, now = self._advance(frame_index, timestamp)
        for t in self._tracks:
            t.box = self._predicted_box(t, frame, now)
            t.lost_frames = frame - t.last_frame
        return self.tracks

    def update(
        self,
        boxes: np.ndarray,
        scores: np.ndarray | None = None,
        keypoints: np.ndarray | None = None,
        frame_index: int | None = None,
        timestamp: float | None = None,
    ) -> list[int]:
        """Match this frame's people to the tracks; the track id of each input person, in input order.

        ``boxes`` [N, 4] (x, y, w, h), ``scores`` [N] (kept on the track), ``keypoints`` [N, K, 2|3] (x, y[, score])
        for OKS matching. ``frame_index`` defaults to the previous one + 1; ``timestamp`` is in seconds.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        n = boxes.shape[0]
        scores_arr = np.ones(n) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
        if scores_arr.shape[0] != n:
            raise ValueError(f"update: {n} boxes but {scores_arr.shape[0]} scores")
        kpts = None if keypoints is None else np.asarray(keypoints, dtype=np.float64)
        if kpts is not None and (kpts.ndim != 3 or kpts.shape[0] != n or kpts.shape[2] not in (2, 3)):
            raise ValueError(f"update: keypoints must be [{n}, K, 2|3] for {n} boxes, got {kpts.shape}")
        frame, now = self._advance(frame_index, timestamp)
        predicted = [self._predicted_box(t, frame, now) for t in self._tracks]
        pairs = self._assign(predicted, boxes, kpts)
        ids = [0] * n
        matched_tracks = set()
        for ti, di in pairs:
            track = self._tracks[ti]
            self._observe(track, boxes[di], scores_arr[di], None if kpts is None else kpts[di], frame, now)
            ids[di] = track.id
            matched_tracks.add(ti)
        for ti, track in enumerate(self._tracks):
            if ti not in matched_tracks:
                track.box = predicted[ti]
                track.lost_frames = frame - track.last_frame
        for di in range(n):
            if ids[di] == 0:
                ids[di] = self._start(boxes[di], scores_arr[di], None if kpts is None else kpts[di], frame, now)
        return ids

    def _assign(self, predicted: list[np.ndarray], boxes: np.ndarray, kpts: np.ndarray | None) -> list[tuple[int, int]]:
        """(track, detection) pairs from the Hungarian algorithm on 1 - similarity, IoU-gated."""
        if not predicted or boxes.shape[0] == 0:
            return []

        track_boxes = np.stack(predicted).astype(np.float64)
        iou = box_iou(track_boxes, boxes)
        sim = iou
        if self.oks_weight > 0 and kpts is not None:
            sim = iou.copy()
            k = kpts.shape[1]
            sigmas = self.oks_sigmas if self.oks_sigmas is not None else self._default_sigmas(k)
            for ti, track in enumerate(self._tracks):
                if track.keypoints is None or track.keypoints.shape[0] != k:
                    continue
                # the track's keypoints moved with its box, so a moving person is compared where it is now
                shift = track_boxes[ti, :2] - (track._observed[:2] - track._observed[2:] / 2)
                moved = track.keypoints.copy()
                moved[:, :2] += shift
                area = np.array([track_boxes[ti, 2] * track_boxes[ti, 3]])
                oks, shared = keypoint_oks(moved[None], kpts, area, sigmas, self.keypoint_threshold)
                blend = (1 - self.oks_weight) * iou[ti] + self.oks_weight * oks[0]
                sim[ti] = np.where(shared[0], blend, iou[ti])
        cost = np.where(iou >= self.min_iou, 1.0 - sim, _FORBIDDEN)
        rows, cols = linear_sum_assignment(cost)
        return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] < _FORBIDDEN]

    def _default_sigmas(self, k: int) -> np.ndarray:
        return np.asarray(default_keypoint_set(k).sigmas, dtype=np.float64)

    def _observe(self, track: Track, box: np.ndarray, score: float, kpts: np.ndarray | None, frame: int,
                 now: float) -> None:
        state = _centre_size(box)
        dt = now - track.last_time
        if dt > 0:
            measured = (state[:2] - track._observed[:2]) / dt
            a = self.velocity_smoothing if track.hits > 1 else 1.0  # the first measurement is the estimate
            track.velocity = a * measured + (1 - a) * track.velocity
        track.drift = max(track.drift, float(np.linalg.norm(state[:2] - track._origin[:2])))
        track._observed = state
        track.box = np.asarray(box, dtype=np.float32).copy()
        track.score = float(score)
        track.best_score = max(track.best_score, track.score)
        track.keypoints = None if kpts is None else kpts.copy()
        track.last_frame = frame
        track.last_time = now
        track.hits += 1
        track.lost_frames = 0
        track.static = (self.static_frames > 0 and track.hits >= self.static_frames
                        and track.best_score < self.static_score
                        and track.drift <= self.static_motion * max(float(state[3]), 1.0))

    def _start(self, box: np.ndarray, score: float, kpts: np.ndarray | None, frame: int, now: float) -> int:
        track = Track(id=self._next_id, box=np.asarray(box, dtype=np.float32).copy(), score=float(score),
                      keypoints=None if kpts is None else kpts.copy(), first_frame=frame, last_frame=frame,
                      last_time=now, _observed=_centre_size(box), best_score=float(score))
        track._origin = track._observed.copy()
        self._next_id += 1
        self._tracks.append(track)
        return track.id
