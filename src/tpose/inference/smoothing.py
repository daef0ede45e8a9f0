"""Temporal smoothing of keypoints in video: the One-Euro filter and one filter per track and keypoint.

Per-frame keypoints jitter by a few pixels even when the person stands still. The One-Euro filter (Casiez,
Roussel and Vogel, CHI 2012) is a low-pass filter whose cutoff rises with the signal's speed: slow
movements are smoothed hard (little jitter), fast ones barely (little lag). With ``dt`` the time since
the previous sample, alpha(fc) = 1 / (1 + 1 / (2 pi fc dt)) and

    dx_hat = alpha(d_cutoff) * (x - x_hat_prev) / dt + (1 - alpha(d_cutoff)) * dx_hat_prev
    fc     = min_cutoff + beta * |dx_hat|
    x_hat  = alpha(fc) * x + (1 - alpha(fc)) * x_hat_prev

Time is in seconds (timestamps, not frame counts), so the same settings work at any frame rate and across
dropped frames. ``min_cutoff`` (Hz) sets the jitter removed at rest, ``beta`` (1 / pixel) how fast the cutoff
opens with speed (px / s), ``d_cutoff`` (Hz) the smoothing of the speed estimate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np


def _alpha(cutoff: np.ndarray | float, dt: np.ndarray) -> np.ndarray:
    """The exponential smoothing factor of a first-order low-pass at ``cutoff`` Hz for steps of ``dt`` s."""
    return 1.0 / (1.0 + 1.0 / (2.0 * math.pi * np.asarray(cutoff) * dt))


class OneEuroFilter:
    """A One-Euro filter over an array of any fixed shape, every element filtered independently.

    Elements that are NaN (or False in ``valid``) pass through unchanged and restart their filter when
    they come back, so a keypoint that was missing is not dragged from where it was last seen.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0:
            raise ValueError(f"min_cutoff and d_cutoff must be > 0 Hz, got {min_cutoff} and {d_cutoff}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the history: the next sample is passed through as it is."""
        self._x: np.ndarray | None = None  # filtered values
        self._dx: np.ndarray | None = None  # filtered speed
        self._t: np.ndarray | None = None  # time of each element's previous sample
        self._live: np.ndarray | None = None  # which elements have a history

    def __call__(self, x: np.ndarray | float, timestamp: float, valid: np.ndarray | None = None) -> np.ndarray:
        """The filtered value of sample ``x`` taken at ``timestamp`` seconds (which must not decrease)."""
        x = np.array(x, dtype=np.float64)
        ok = np.isfinite(x) if valid is None else (np.asarray(valid, dtype=bool) & np.isfinite(x))
        if self._x is None:
            self._x = np.where(ok, x, 0.0)
            self._dx = np.zeros_like(x)
            self._t = np.full(x.shape, float(timestamp))
            self._live = ok.copy()
            return x
        assert self._dx is not None and self._t is not None and self._live is not None
        if x.shape != self._x.shape:
            raise ValueError(f"OneEuroFilter: sample shape {x.shape} differs from the earlier {self._x.shape}")
        t = float(timestamp)
        going = ok & self._live
        dt = t - self._t
        if np.any(dt[going] < 0):
            raise ValueError(f"OneEuroFilter: timestamp {t} is earlier than the previous sample's")
        out = x.copy()
        step = going & (dt > 0)
        if np.any(step):
            d = dt[step]
            dx = (x[step] - self._x[step]) / d
            a_d = _alpha(self.d_cutoff, d)
            dx_hat = a_d * dx + (1 - a_d) * self._dx[step]
            a = _alpha(self.min_cutoff + self.beta * np.abs(dx_hat), d)
            x_hat = a * x[step] + (1 - a) * self._x[step]
            self._x[step], self._dx[step], self._t[step] = x_hat, dx_hat, t
            out[step] = x_hat
        same_time = going & (dt == 0)
        out[same_time] = self._x[same_time]  # a repeated timestamp gives the previous output
        start = ok & ~self._live  # (re)appearing elements start a fresh history
        self._x[start], self._dx[start], self._t[start] = x[start], 0.0, t
        self._live = ok.copy()
        return out


class KeypointSmoother:
    """One-Euro smoothing of each tracked person's keypoints: one filter per track id and keypoint coordinate.

    Call it with the track id (from :class:`tpose.inference.tracking.Tracker`), the person's keypoints
    [K, 2|3] (x, y[, score]) and the frame's time in seconds; the scores pass through unfiltered. Keypoints
    scoring below ``min_score`` are left as they are and restart their filter. Filters of tracks that are
    gone are dropped by :meth:`forget` (e.g. with ``Tracker.removed``) or :meth:`retain`. ``enabled=False``
    turns it into a pass-through that keeps no state.
    """

    def __init__(
        self,
        min_cutoff: float = 1.0,
        beta: float = 0.05,
        d_cutoff: float = 1.0,
        min_score: float = 0.0,
        enabled: bool = True,
    ) -> None:
        OneEuroFilter(min_cutoff, beta, d_cutoff)  # checks the parameters
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.min_score = float(min_score)
        self.enabled = bool(enabled)
        self._filters: dict[int, OneEuroFilter] = {}

    @property
    def track_ids(self) -> list[int]:
        """The tracks with filter state, in the order they appeared."""
        return list(self._filters)

    def __len__(self) -> int:
        return len(self._filters)

    def __call__(self, track_id: int, keypoints: np.ndarray, timestamp: float) -> np.ndarray:
        """This person's keypoints smoothed (same shape and columns as given)."""
        kpts = np.asarray(keypoints, dtype=np.float64)
        if kpts.ndim != 2 or kpts.shape[1] not in (2, 3):
            raise ValueError(f"KeypointSmoother: keypoints must be [K, 2|3], got shape {kpts.shape}")
        if not self.enabled:
            self._filters.clear()
            return kpts.copy()
        flt = self._filters.get(int(track_id))
        if flt is None:
            flt = self._filters[int(track_id)] = OneEuroFilter(self.min_cutoff, self.beta, self.d_cutoff)
        valid = None
        if kpts.shape[1] == 3:
            valid = np.repeat((kpts[:, 2] >= self.min_score)[:, None], 2, axis=1)
        out = kpts.copy()
        out[:, :2] = flt(kpts[:, :2], timestamp, valid)
        return out

    def smooth(self, track_ids: Sequence[int], keypoints: np.ndarray, timestamp: float) -> np.ndarray:
        """All persons of one frame at once: ``keypoints`` [N, K, 2|3] with their N track ids."""
        kpts = np.asarray(keypoints, dtype=np.float64)
        if kpts.shape[0] != len(track_ids):
            raise ValueError(f"KeypointSmoother: {len(track_ids)} track ids for {kpts.shape[0]} persons")
        if len(set(int(i) for i in track_ids)) != len(track_ids):
            raise ValueError(f"KeypointSmoother: repeated track ids {list(track_ids)}")
        if len(kpts) == 0:
            return kpts.copy()
        return np.stack([self(i, k, timestamp) for i, k in zip(track_ids, kpts, strict=True)])

    def forget(self, track_ids: Iterable[int]) -> None:
        """Drop the filters of these tracks (ended ones): a reused id would otherwise inherit stale state."""
        for i in track_ids:
            self._filters.pop(int(i), None)

    def retain(self, track_ids: Iterable[int]) -> None:
        """Keep only these tracks' filters."""
        keep = {int(i) for i in track_ids}
        for i in [i for i in self._filters if i not in keep]:
            del self._filters[i]

    def reset(self) -> None:
        """Forget every track (a new video)."""
        self._filters.clear()
