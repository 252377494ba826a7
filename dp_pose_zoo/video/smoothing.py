"""One-Euro filter (Casiez, Roussel & Vogel, CHI 2012) per joint, per tracked person.

Why One-Euro: keypoints jitter by a pixel or two when a person stands still
and move fast when they move. A fixed low-pass either lags or jitters; the
One-Euro filter lowers its cutoff when the joint is slow (less jitter) and
raises it when the joint is fast (less lag). The maths are pure functions on
arrays (all 16 x 2 coordinates at once); :class:`OneEuroFilter` holds the
state of one signal and :class:`PoseSmoother` one filter per track id.
"""

from __future__ import annotations

import math

import numpy as np


def smoothing_factor(dt: float, cutoff: np.ndarray | float) -> np.ndarray | float:
    """alpha of an exponential filter with cutoff frequency ``cutoff`` Hz sampled every ``dt`` s."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


def exponential_smoothing(alpha: np.ndarray | float, x: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """``alpha * x + (1 - alpha) * previous``."""
    return alpha * x + (1.0 - alpha) * previous


def one_euro_step(x: np.ndarray, x_prev: np.ndarray, dx_prev: np.ndarray, dt: float, *, min_cutoff: float,
                  beta: float, d_cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """One step: the filtered value and the filtered speed (to pass back next step)."""
    x = np.asarray(x, dtype=np.float64)
    dx = (x - x_prev) / dt
    dx_hat = exponential_smoothing(smoothing_factor(dt, d_cutoff), dx, dx_prev)
    cutoff = min_cutoff + beta * np.abs(dx_hat)
    x_hat = exponential_smoothing(smoothing_factor(dt, cutoff), x, x_prev)
    return x_hat, dx_hat


class OneEuroFilter:
    """The filter of one array-valued signal (e.g. a person's ``(16, 2)`` keypoints).

    ``min_cutoff`` (Hz) sets the smoothing at rest, ``beta`` (per pixel/s) how
    fast the cutoff rises with speed, ``d_cutoff`` (Hz) the speed estimate's own smoothing.
    """

    def __init__(self, *, min_cutoff: float = 1.0, beta: float = 0.02, d_cutoff: float = 1.0):
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("min_cutoff and d_cutoff must be > 0 and beta >= 0")
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """The filtered ``x`` observed at time ``t`` seconds (the first call returns ``x`` itself)."""
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._t is None or self._x.shape != x.shape or t <= self._t:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.copy()
        self._x, self._dx = one_euro_step(x, self._x, self._dx, t - self._t, min_cutoff=self.min_cutoff,
                                          beta=self.beta, d_cutoff=self.d_cutoff)
        self._t = t
        return self._x.copy()


class PoseSmoother:
    """One :class:`OneEuroFilter` per track id; tracks not seen for ``max_age`` calls are dropped."""

    def __init__(self, *, min_cutoff: float = 1.0, beta: float = 0.02, d_cutoff: float = 1.0, max_age: int = 10):
        self._options = dict(min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff)
        self.max_age = max_age
        self._filters: dict[int, OneEuroFilter] = {}
        self._age: dict[int, int] = {}

    def __call__(self, track_id: int, keypoints: np.ndarray, t: float) -> np.ndarray:
        """Smoothed keypoints of ``track_id`` at time ``t``."""
        if track_id not in self._filters:
            self._filters[track_id] = OneEuroFilter(**self._options)
        self._age[track_id] = -1  # becomes 0 at end_frame
        return self._filters[track_id](keypoints, t)

    def smooth_frame(self, people, t: float) -> None:
        """Smooth every person's ``keypoints`` in place (by ``track_id``) at time ``t``, then end the frame."""
        for person in people:
            person.keypoints = self(person.track_id, person.keypoints, t)
        self.end_frame()

    def end_frame(self) -> None:
        """Age every track by one frame and forget the stale ones."""
        for track in list(self._age):
            self._age[track] += 1
            if self._age[track] > self.max_age:
                del self._age[track], self._filters[track]

    def reset(self) -> None:
        self._filters.clear()
        self._age.clear()
