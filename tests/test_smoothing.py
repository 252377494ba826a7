"""One-Euro filter: pure steps, less jitter at rest, little lag when moving, per-track state."""

from __future__ import annotations

import numpy as np
import pytest

from dp_pose_zoo.video.smoothing import OneEuroFilter, PoseSmoother, one_euro_step, smoothing_factor


def test_smoothing_factor_limits():
    assert smoothing_factor(1.0, 1e9) == pytest.approx(1.0, abs=1e-6)
    assert smoothing_factor(0.1, 1.0) == pytest.approx(1 / (1 + 1 / (2 * np.pi * 0.1)))


def test_one_euro_step_is_pure():
    x, dx = one_euro_step(np.array([2.0]), np.array([0.0]), np.array([0.0]), 0.1, min_cutoff=1.0, beta=0.0,
                          d_cutoff=1.0)
    assert 0 < x[0] < 2 and dx[0] > 0


def test_filter_reduces_jitter_at_rest_and_follows_motion():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    noisy = 100 + rng.normal(0, 2, size=(50, 16, 2))
    out = np.array([f(x, t * 0.1) for t, x in enumerate(noisy)])
    assert out[10:].std() < 0.6 * noisy[10:].std()
    fast = OneEuroFilter(min_cutoff=1.0, beta=0.5)
    ramp = [fast(np.full((16, 2), 50.0 * t), t * 0.1) for t in range(30)]
    assert abs(ramp[-1][0, 0] - 50.0 * 29) < 25  # lag under half a frame's motion


def test_first_call_passes_through_and_time_must_advance():
    f = OneEuroFilter()
    x = np.arange(32.0).reshape(16, 2)
    assert np.array_equal(f(x, 0.0), x)
    assert np.array_equal(f(x + 5, 0.0), x + 5)  # same time: restart, not a division by zero


def test_pose_smoother_keeps_one_filter_per_track():
    s = PoseSmoother(max_age=1)
    a, b = np.zeros((16, 2)), np.full((16, 2), 100.0)
    s(1, a, 0.0), s(2, b, 0.0)
    s.end_frame()
    assert s(1, a + 10, 0.1)[0, 0] < 10 and s(2, b, 0.1)[0, 0] == pytest.approx(100)
    s.end_frame(), s.end_frame(), s.end_frame()
    assert np.array_equal(s(1, a + 50, 0.5), a + 50)  # forgotten: starts afresh


def test_smooth_frame_is_the_per_track_calls_then_end_frame():
    from types import SimpleNamespace

    frame_api, by_hand = PoseSmoother(max_age=1), PoseSmoother(max_age=1)
    rng = np.random.default_rng(0)
    for step in range(5):
        points = {1: rng.normal(size=(16, 2)) * 10, 2: rng.normal(size=(16, 2)) * 10 + 100}
        people = [SimpleNamespace(track_id=t, keypoints=k.copy()) for t, k in points.items() if step != 2 or t == 1]
        frame_api.smooth_frame(people, step * 0.1)
        expected = [by_hand(p.track_id, points[p.track_id], step * 0.1) for p in people]
        by_hand.end_frame()
        for person, want in zip(people, expected):
            assert np.array_equal(person.keypoints, want)
    assert frame_api._age == by_hand._age
