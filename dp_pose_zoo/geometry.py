"""Top-down crop geometry: person boxes to affine maps and back (numpy + cv2).

Conventions (MPII's): a person is a ``center`` in image pixels and a ``scale``
such that ``scale * 200`` is the height in pixels of the box that holds them.
A crop pads that box by ``padding`` and widens or heightens it to the model's
aspect ratio, so limbs are never squashed.
"""

from __future__ import annotations

import cv2
import numpy as np

SCALE_UNIT = 200.0
DEFAULT_PADDING = 1.25


def bbox_to_center_scale(bbox, aspect_ratio: float = 192 / 256) -> tuple[np.ndarray, float]:
    """``(x1, y1, x2, y2)`` to ``center, scale`` with a box of width/height ``aspect_ratio``."""
    x1, y1, x2, y2 = (float(v) for v in bbox)
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    center = np.array([x1 + w / 2.0, y1 + h / 2.0])
    height = max(h, w / aspect_ratio)
    return center, height / SCALE_UNIT


def center_scale_to_bbox(center, scale: float, aspect_ratio: float = 192 / 256) -> np.ndarray:
    """The ``x1, y1, x2, y2`` box that :func:`bbox_to_center_scale` turns back into ``center, scale``.

    It is ``scale * 200`` high and ``aspect_ratio`` times that wide (at most: a hair narrower, so
    float rounding can never make the width decide the height), so a runtime given this box crops
    exactly what an evaluation given the record's ``center, scale`` crops.
    """
    cx, cy = (float(v) for v in center)
    height = float(scale) * SCALE_UNIT
    half_w, half_h = height * aspect_ratio * (1.0 - 1e-12) / 2.0, height / 2.0
    return np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h])


def crop_matrix(center, scale: float, output_size: tuple[int, int], *, rotation: float = 0.0,
                padding: float = DEFAULT_PADDING, inverse: bool = False) -> np.ndarray:
    """The 2x3 affine map from image pixels to crop pixels (or back, with ``inverse``).

    ``output_size`` is ``(height, width)``. The box of height ``scale * 200 *
    padding`` around ``center`` (widened to the crop's aspect ratio) fills the
    crop; ``rotation`` in degrees turns the person counter-clockwise in the crop.
    """
    out_h, out_w = output_size
    box_h = scale * SCALE_UNIT * padding
    zoom = out_h / box_h
    theta = np.deg2rad(rotation)
    cos, sin = np.cos(theta) * zoom, np.sin(theta) * zoom
    # Rotate and zoom about the centre, then move the centre to the crop's middle.
    linear = np.array([[cos, sin], [-sin, cos]])
    shift = np.array([out_w / 2.0, out_h / 2.0]) - linear @ np.asarray(center, dtype=np.float64)
    matrix = np.hstack([linear, shift[:, None]])
    if inverse:
        matrix = cv2.invertAffineTransform(matrix)
    return matrix


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map ``(..., 2)`` points through a 2x3 affine matrix."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def warp_crop(image: np.ndarray, matrix: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """Cut the crop ``(height, width)`` that ``matrix`` describes out of ``image``."""
    out_h, out_w = output_size
    return cv2.warpAffine(image, matrix, (int(out_w), int(out_h)), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
