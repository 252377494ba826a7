"""Drawing people on frames: skeletons coloured by side, boxes with track ids, and the privacy label.

Skeletons are plain data (:data:`dp_pose_zoo.skeleton.LIMBS`, each bone with a
side), as rtmlib keeps them. Joints scored under ``kpt_thr`` are hidden, and so
is every bone touching one. The label in the corner says what the weights
spent -- "ε=8.0 (δ=1e-05, C=1.0) dp-sgd" -- because a viewer of the video
should know what privacy guarantee the model that drew it comes with.

OpenCV's Hershey fonts are ASCII only, so ε, δ and ∞ are drawn as small
glyphs of their own (:func:`put_text`).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, Iterable

import cv2
import numpy as np

from ..card import epsilon_up, format_epsilon
from ..skeleton import DEFAULT_KPT_THR, LIMBS

# BGR by side: 0 centre, 1 left, 2 right (the person's own left and right).
SIDE_COLORS: dict[int, tuple[int, int, int]] = {0: (255, 170, 60), 1: (60, 220, 60), 2: (40, 140, 255)}
JOINT_COLOR = (255, 255, 255)
LABEL_BG = (0, 0, 0)
LABEL_FG = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX
_PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)]


def track_color(track_id: int | None) -> tuple[int, int, int]:
    """A stable colour per track id (BGR)."""
    if track_id is None:
        return (200, 200, 200)
    r, g, b = _PALETTE[int(track_id) % len(_PALETTE)]
    return (b, g, r)


def _fmt(value: Any) -> str:
    if isinstance(value, (int, float)) and math.isinf(value):
        return "∞"
    if isinstance(value, float):
        if abs(value) < 1e-3 or abs(value) >= 1e4:
            return f"{value:g}"
        return f"{value:.1f}" if value == round(value, 1) else f"{value:.6g}"
    return str(value)


def _fmt_epsilon(eps: float) -> str:
    """Epsilon rounded UP to two decimals (a label never shows less than was spent): 7.931 -> 7.94, 8 -> 8.0."""
    if eps >= 1e4 or eps < 0.01:
        return format_epsilon(eps, 3)
    up = epsilon_up(eps, Decimal("0.01"))
    text = f"{up:f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def privacy_label(privacy: dict | None, *, verified: bool = True) -> str:
    """``"ε=8.0 (δ=1e-05, C=1.0) dp-sgd"`` from a card's privacy block; says so when privacy is unknown,
    or when (``verified=False``) the block is an ONNX's own claim that no model card vouches for."""
    if not privacy:
        return "privacy unknown (no dp_pose_zoo metadata)"
    label = _claim_label(privacy)
    return label if verified else f"{label}, unverified (no model card)"


def _claim_label(privacy: dict) -> str:
    eps = privacy.get("epsilon")
    method = privacy.get("method") or "?"
    if eps is None or (isinstance(eps, (int, float)) and math.isinf(eps)):
        return f"ε=∞ {method}" if method != "?" else "ε=∞"
    eps_text = _fmt_epsilon(float(eps)) if isinstance(eps, (int, float)) else str(eps)
    details = [f"δ={_fmt(privacy['delta'])}"] if privacy.get("delta") is not None else []
    if privacy.get("clipping_norm") is not None:
        details.append(f"C={_fmt(float(privacy['clipping_norm']))}")
    return f"ε={eps_text}" + (f" ({', '.join(details)})" if details else "") + f" {method}"


def _glyph(image: np.ndarray, ch: str, x: int, y: int, size: int, color, thickness: int) -> None:
    """Draw ε, δ or ∞ in a box ``size`` wide whose baseline is ``y``."""
    s = size
    if ch == "ε":
        r = max(1, s // 4)
        cx = x + s // 2 + 1
        cv2.ellipse(image, (cx, y - 3 * r), (r + 1, r), 0, 60, 300, color, thickness, cv2.LINE_AA)
        cv2.ellipse(image, (cx, y - r), (r + 2, r), 0, 60, 300, color, thickness, cv2.LINE_AA)
    elif ch == "δ":
        r = max(1, int(s * 0.3))
        cx = x + s // 2
        cv2.circle(image, (cx, y - r), r, color, thickness, cv2.LINE_AA)
        top = y - 2 * r - int(s * 0.55)
        cv2.ellipse(image, (cx, top + r // 2 + 1), (r, r // 2 + 1), 0, 180, 360, color, thickness, cv2.LINE_AA)
        cv2.line(image, (cx - r, top + r // 2 + 1), (cx, y - 2 * r), color, thickness, cv2.LINE_AA)
    elif ch == "∞":
        r = max(1, s // 4)
        cy = y - int(s * 0.45)
        cv2.circle(image, (x + r + 1, cy), r, color, thickness, cv2.LINE_AA)
        cv2.circle(image, (x + 3 * r + 1, cy), r, color, thickness, cv2.LINE_AA)


_GLYPHS = "εδ∞"


def text_size(text: str, *, scale: float = 0.5, thickness: int = 1) -> tuple[int, int]:
    """``(width, height)`` of ``text`` as :func:`put_text` draws it."""
    glyph_w, h = cv2.getTextSize("o", FONT, scale, thickness)[0]
    width = 0
    for part, is_glyph in _split(text):
        width += (glyph_w + 2) * len(part) if is_glyph else cv2.getTextSize(part, FONT, scale, thickness)[0][0]
    return width, h


def _split(text: str) -> Iterable[tuple[str, bool]]:
    part, glyph = "", False
    for ch in text:
        is_glyph = ch in _GLYPHS
        if part and is_glyph != glyph:
            yield part, glyph
            part = ""
        part, glyph = part + ch, is_glyph
    if part:
        yield part, glyph


def put_text(image: np.ndarray, text: str, org: tuple[int, int], *, scale: float = 0.5, color=LABEL_FG,
             thickness: int = 1) -> np.ndarray:
    """``cv2.putText`` that also draws ε, δ and ∞; other non-ASCII characters become ``?``."""
    x, y = int(org[0]), int(org[1])
    glyph_w, glyph_h = cv2.getTextSize("o", FONT, scale, thickness)[0]
    for part, is_glyph in _split(text):
        if is_glyph:
            for ch in part:
                _glyph(image, ch, x, y, glyph_w + 2, color, thickness)
                x += glyph_w + 2
        else:
            ascii_part = part.encode("ascii", "replace").decode()
            cv2.putText(image, ascii_part, (x, y), FONT, scale, color, thickness, cv2.LINE_AA)
            x += cv2.getTextSize(ascii_part, FONT, scale, thickness)[0][0]
    return image


def draw_label(image: np.ndarray, text: str, *, corner: str = "top-left", scale: float | None = None) -> np.ndarray:
    """``text`` on a dark band in a corner (``top-left``, ``top-right``, ``bottom-left``, ``bottom-right``)."""
    h, w = image.shape[:2]
    scale = scale if scale is not None else max(0.4, min(1.0, w / 1000))
    thickness = 1 if scale < 0.8 else 2
    tw, th = text_size(text, scale=scale, thickness=thickness)
    pad = max(3, int(th * 0.4))
    x = pad if "left" in corner else max(0, w - tw - 2 * pad)
    y = pad if "top" in corner else max(0, h - th - 3 * pad)
    cv2.rectangle(image, (x, y), (min(w - 1, x + tw + 2 * pad), min(h - 1, y + th + 2 * pad + 2)), LABEL_BG, -1)
    return put_text(image, text, (x + pad, y + th + pad), scale=scale, thickness=thickness)


def draw_skeleton(image: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, *,
                  kpt_thr: float = DEFAULT_KPT_THR,
                  radius: int | None = None, thickness: int | None = None) -> np.ndarray:
    """Bones coloured by side and joints as dots; joints under ``kpt_thr`` (and their bones) are hidden."""
    pts = np.asarray(keypoints, dtype=np.float64)
    shown = np.asarray(scores) >= kpt_thr
    if not shown.any():
        return image
    span = float(np.ptp(pts[shown], axis=0).max()) if shown.sum() > 1 else 50.0
    thickness = thickness or max(1, min(4, int(span / 60)))
    radius = radius or thickness + 1
    for a, b, side in LIMBS:
        if shown[a] and shown[b]:
            cv2.line(image, _pt(pts[a]), _pt(pts[b]), SIDE_COLORS[side], thickness, cv2.LINE_AA)
    for i in np.flatnonzero(shown):
        cv2.circle(image, _pt(pts[i]), radius, JOINT_COLOR, -1, cv2.LINE_AA)
    return image


def draw_box(image: np.ndarray, box: np.ndarray, *, track_id: int | None = None, dashed: bool = False) -> np.ndarray:
    """The person box in its track colour, with ``#id`` above it; dashed for boxes made from keypoints."""
    x1, y1, x2, y2 = (int(round(v)) for v in np.asarray(box, dtype=np.float64)[:4])
    color = track_color(track_id)
    if dashed:
        for (ax, ay), (bx, by) in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)),
                                   ((x1, y2), (x1, y1))):
            n = max(1, int(math.hypot(bx - ax, by - ay) // 6))
            for k in range(0, n, 2):
                p = (ax + (bx - ax) * k // n, ay + (by - ay) * k // n)
                q = (ax + (bx - ax) * (k + 1) // n, ay + (by - ay) * (k + 1) // n)
                cv2.line(image, p, q, color, 1)
    else:
        cv2.rectangle(image, (x1, y1), (x2, y2), color, 1)
    if track_id is not None:
        scale = 0.4
        (tw, th), _ = cv2.getTextSize(f"#{track_id}", FONT, scale, 1)
        ty = y1 - 3 if y1 - th - 4 >= 0 else y1 + th + 3
        cv2.rectangle(image, (x1, ty - th - 2), (x1 + tw + 2, ty + 2), color, -1)
        cv2.putText(image, f"#{track_id}", (x1 + 1, ty), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return image


def draw_people(image: np.ndarray, people: Iterable, *, kpt_thr: float = DEFAULT_KPT_THR, boxes: bool = True,
                privacy: dict | None | bool = False, verified: bool = True, copy: bool = True) -> np.ndarray:
    """Skeletons (and boxes with track ids) of ``people`` -- :class:`~dp_pose_zoo.runtime.Person` or
    :class:`~dp_pose_zoo.video.tracking.TrackedPerson` -- and, unless ``privacy`` is False, the privacy label
    (see :func:`privacy_label` for ``verified``).
    """
    canvas = image.copy() if copy else image
    for person in people:
        track_id = getattr(person, "track_id", None)
        if boxes:
            draw_box(canvas, person.box, track_id=track_id, dashed=getattr(person, "box_source", "") == "keypoints")
        draw_skeleton(canvas, person.keypoints, person.scores, kpt_thr=kpt_thr)
    if privacy is not False:
        draw_label(canvas, privacy_label(privacy if isinstance(privacy, dict) else None, verified=verified))
    return canvas


def _pt(p: np.ndarray) -> tuple[int, int]:
    x, y = float(p[0]), float(p[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        return (-10, -10)
    return (int(round(max(-1e5, min(1e5, x)))), int(round(max(-1e5, min(1e5, y)))))
