"""SynthPose: the zoo's own synthetic pose data set (numpy + cv2 only).

Each person is an articulated 3D stick body (MPII-16 joints, human
proportions, one-way elbows and knees, joint limits) posed from a handful of
pose families, turned and leaned as a whole, projected orthographically and
drawn as filled, textured shapes in depth order over a cluttered background.
Two appearance domains, ``public`` and ``private``, share the skeleton but
differ in palette, textures, background, limb shapes and camera effects.

Everything is derived from ``(domain, seed, index)`` through independent
numpy Generator streams (pose, background, look, camera), so records can be
built without rendering, and ``load_image`` re-renders exactly the pose the
record holds. Pose geometry uses plain Python floats and the rendering integer
maths only, so results do not depend on BLAS or SIMD code paths.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import shutil
from dataclasses import dataclass
from functools import reduce
from typing import Callable

import cv2
import numpy as np

from ..errors import DatasetError
from ..geometry import bbox_to_center_scale
from .base import PersonRecord, PoseDataset

DOMAINS = ("public", "private")
# "holdout": same-domain people outside train/val/test, e.g. PDP-SGD's public subset (the
# paper's 100 MPII samples with no image in the private training set).
SPLIT_SEEDS: dict[str, int] = {
    "public-train": 1001, "public-val": 1002, "public-test": 1003, "public-holdout": 1004,
    "private-train": 2001, "private-val": 2002, "private-test": 2003, "private-holdout": 2004,
}
DEFAULT_SIZES: dict[str, int] = {"train": 4000, "val": 500, "test": 500, "holdout": 100}
IMAGE_SIZE = 256  # square canvas, BGR uint8

_DOMAIN_CODE = {"public": 1, "private": 2}
_POSE, _BACKGROUND, _LOOK, _CAMERA = range(4)  # independent random streams

# MPII-16 joint indices (see skeleton.JOINT_NAMES).
R_ANK, R_KNEE, R_HIP, L_HIP, L_KNEE, L_ANK, PELVIS, THORAX, NECK, HEAD = range(10)
R_WRI, R_ELB, R_SHO, L_SHO, L_ELB, L_WRI = range(10, 16)
# Per side (+1 = person's left, -1 = right): hip, knee, ankle, shoulder, elbow, wrist.
_SIDE_JOINTS = {1: (L_HIP, L_KNEE, L_ANK, L_SHO, L_ELB, L_WRI), -1: (R_HIP, R_KNEE, R_ANK, R_SHO, R_ELB, R_WRI)}

# Joint limits in degrees (anatomical ranges, loosely after standard ROM tables).
LIMITS = {
    "bend": (-20, 85), "lean": (-25, 25), "twist": (-35, 35), "nod": (-30, 40), "tilt": (-25, 25),
    "head_yaw": (-60, 60), "sh_abd": (-10, 175), "sh_flex": (-50, 175), "sh_rot": (-40, 90),
    "elbow": (0, 150), "hip_flex": (-25, 125), "hip_abd": (-15, 45), "hip_rot": (-30, 40), "knee": (0, 150),
}
_KEY_LIMITS = {**LIMITS, **{f"{s}.{k}": v for s in "LR" for k, v in LIMITS.items()}}
_FAMILIES = ("standing", "walking", "arms_up", "reaching", "bending", "sitting", "squatting", "random")
_FAMILY_P = {"public": (0.24, 0.22, 0.14, 0.1, 0.08, 0.1, 0.04, 0.08),
             "private": (0.14, 0.14, 0.14, 0.1, 0.14, 0.18, 0.08, 0.08)}
# Segment lengths as fractions of stature (after Drillis & Contini).
_LENGTHS = {"head": 0.125, "neck": 0.055, "torso": 0.29, "upper_arm": 0.186, "forearm": 0.146,
            "hand": 0.08, "thigh": 0.245, "shin": 0.246, "foot": 0.1, "shoulder": 0.112, "hip": 0.052}
_RADII = {"neck": 0.028, "upper_arm": 0.031, "forearm": 0.025, "hand": 0.027, "thigh": 0.046,
          "shin": 0.034, "foot": 0.024, "torso_depth": 0.055, "head": 0.047}

Vec = tuple[float, float, float]
Mat = tuple[Vec, Vec, Vec]


# ----------------------------------------------------------------------------- validation / ids
def _check(domain: str, seed: int, n: int = 1) -> None:
    if domain not in DOMAINS:
        raise DatasetError(f"unknown SynthPose domain {domain!r}; expected one of {', '.join(DOMAINS)}")
    for label, value, low in (("seed", seed, 0), ("n", n, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise DatasetError(f"SynthPose {label} must be an integer >= {low}, got {value!r}")


def _rng(domain: str, seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index), _DOMAIN_CODE[domain], stream])


def _image_id(domain: str, seed: int, index: int) -> str:
    return f"synthpose-{domain}-{seed}-{index:06d}"


def _parse_image_id(image_id: str) -> tuple[str, int, int]:
    match = re.fullmatch(r"synthpose-(public|private)-(\d+)-(\d+)", image_id)
    if not match:
        raise DatasetError(f"not a SynthPose image_id: {image_id!r}; expected synthpose-<domain>-<seed>-<index>")
    return match[1], int(match[2]), int(match[3])


# ----------------------------------------------------------------------------- 3D kinematics
def _rot(axis: str, deg: float) -> Mat:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    if axis == "x":
        return ((1.0, 0.0, 0.0), (0.0, c, -s), (0.0, s, c))
    if axis == "y":
        return ((c, 0.0, s), (0.0, 1.0, 0.0), (-s, 0.0, c))
    return ((c, -s, 0.0), (s, c, 0.0), (0.0, 0.0, 1.0))


def _zxy(a: float, b: float, c: float) -> Mat:
    """``rot(z, a) @ rot(x, b) @ rot(y, c)`` in closed form (a limb's abduction, flexion, twist)."""
    ra, rb, rc = math.radians(a), math.radians(b), math.radians(c)
    ca, sa, cb, sb, cc, sc = math.cos(ra), math.sin(ra), math.cos(rb), math.sin(rb), math.cos(rc), math.sin(rc)
    return ((ca * cc - sa * sb * sc, -sa * cb, ca * sc + sa * sb * cc),
            (sa * cc + ca * sb * sc, ca * cb, sa * sc - ca * sb * cc),
            (-cb * sc, sb, cb * cc))


def _mm(a: Mat, b: Mat) -> Mat:
    (a00, a01, a02), (a10, a11, a12), (a20, a21, a22) = a
    (b00, b01, b02), (b10, b11, b12), (b20, b21, b22) = b
    return ((a00 * b00 + a01 * b10 + a02 * b20, a00 * b01 + a01 * b11 + a02 * b21, a00 * b02 + a01 * b12 + a02 * b22),
            (a10 * b00 + a11 * b10 + a12 * b20, a10 * b01 + a11 * b11 + a12 * b21, a10 * b02 + a11 * b12 + a12 * b22),
            (a20 * b00 + a21 * b10 + a22 * b20, a20 * b01 + a21 * b11 + a22 * b21, a20 * b02 + a21 * b12 + a22 * b22))


def _mul(*mats: Mat) -> Mat:
    return reduce(_mm, mats)


def _at(origin: Vec, m: Mat, v: Vec) -> Vec:
    """``origin + m @ v``."""
    x, y, z = v
    (a, b, c), (d, e, f), (g, h, i) = m
    return origin[0] + a * x + b * y + c * z, origin[1] + d * x + e * y + f * z, origin[2] + g * x + h * y + i * z


_ORIGIN: Vec = (0.0, 0.0, 0.0)


class _Draws:
    """Uniform numbers served from one pre-drawn block: one Generator call per pose instead of ~80."""

    def __init__(self, rng: np.random.Generator, size: int = 160):
        self._values = rng.random(size).tolist()
        self._next = 0

    def __call__(self, low: float = 0.0, high: float = 1.0) -> float:
        value = self._values[self._next]
        self._next += 1
        return low + (high - low) * value

    def triangular(self, half_width: float) -> float:
        """Symmetric triangular noise in (-half_width, half_width): a cheap bell curve."""
        return half_width * (self() + self() - 1.0)


def _pick(r: float, probs: tuple[float, ...]) -> int:
    """The index that a uniform number ``r`` selects under the given probabilities."""
    total = 0.0
    for i, p in enumerate(probs):
        total += p
        if r < total:
            return i
    return len(probs) - 1


def _sample_angles(u: _Draws, family: str) -> dict[str, float]:
    """Joint angles (degrees) for one pose family; keys ``L.x``/``R.x`` are per side."""
    a = {"bend": u(-5, 10), "lean": u(-6, 6), "twist": u(-12, 12), "nod": u(-15, 20),
         "tilt": u(-10, 10), "head_yaw": u(-35, 35)}
    for s in "LR":
        a.update({s + ".sh_abd": u(3, 30), s + ".sh_flex": u(-20, 30), s + ".sh_rot": u(-10, 50),
                  s + ".elbow": u(0, 45), s + ".hip_flex": u(-5, 12), s + ".hip_abd": u(0, 12),
                  s + ".hip_rot": u(-10, 20), s + ".knee": u(0, 15)})
    one, two = ("L.", "R.") if u() < 0.5 else ("R.", "L.")
    if family == "walking":
        swing = u(12, 38)
        a.update({one + "hip_flex": swing, two + "hip_flex": -0.6 * swing, two + "knee": u(15, 65),
                  one + "knee": u(0, 25), two + "sh_flex": 0.8 * swing + u(-5, 10), one + "sh_flex": -0.6 * swing,
                  one + "elbow": u(10, 60), two + "elbow": u(10, 60), "bend": u(0, 12)})
    elif family == "arms_up":
        for s in (one, two) if u() < 0.6 else (one,):
            if u() < 0.5:
                a.update({s + "sh_abd": u(110, 175), s + "sh_flex": u(-10, 30)})
            else:
                a.update({s + "sh_flex": u(110, 175), s + "sh_abd": u(5, 40)})
            a[s + "elbow"] = u(0, 100)
    elif family == "reaching":
        key = "sh_flex" if u() < 0.6 else "sh_abd"
        a.update({one + key: u(50, 110), one + "elbow": u(0, 35), "bend": u(0, 30), "twist": u(-30, 30)})
    elif family == "bending":
        bend = u(35, 85)
        a.update({"bend": bend, "nod": u(-30, 10)})
        for s in "LR":
            a.update({s + ".sh_flex": bend + u(-25, 30), s + ".elbow": u(0, 50),
                      s + ".hip_flex": u(0, 25), s + ".knee": u(0, 35)})
    elif family in ("sitting", "squatting"):
        sit = family == "sitting"
        a["bend"] = u(-10, 15) if sit else u(15, 45)
        for s in "LR":
            a.update({s + ".hip_flex": u(70, 105) if sit else u(95, 125),
                      s + ".knee": u(70, 110) if sit else u(105, 150),
                      s + ".hip_abd": u(0, 20), s + ".sh_flex": u(0, 45) if sit else u(20, 80),
                      s + ".elbow": u(30, 110), s + ".sh_rot": u(20, 70)})
    elif family == "random":
        for key in a:
            lo, hi = _KEY_LIMITS[key]
            a[key] = u(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo))
    return {k: min(max(v, _KEY_LIMITS[k][0]), _KEY_LIMITS[k][1]) for k, v in a.items()}


@dataclass(frozen=True)
class _Skeleton:
    """A posed body in camera axes (x right, y up, z towards the camera), stature = 1."""

    family: str
    joints: tuple[Vec, ...]  # 16, MPII order
    torso: tuple[Vec, ...]  # 8 corners of the torso box
    hand_tips: tuple[Vec, Vec]  # right, left
    foot_tips: tuple[Vec, Vec]
    head_axes: Mat  # rows: head's left, up, forward
    lengths: dict[str, float]
    radii: dict[str, float]


def _sample_skeleton(u: _Draws, domain: str) -> _Skeleton:
    """Sample proportions, a pose family, angles and a whole-body turn; run forward kinematics."""
    jitter = {k: v * (1.0 + u.triangular(0.08)) for k, v in _LENGTHS.items()}
    build = u(0.8, 1.3)
    jitter["head"] *= u(0.92, 1.1)
    radii = {k: v * build for k, v in _RADII.items()}
    radii["head"] = _RADII["head"] * jitter["head"] / _LENGTHS["head"]
    family = _FAMILIES[_pick(u(), _FAMILY_P[domain])]
    ang = _sample_angles(u, family)
    front, side = (0.6, 0.3) if domain == "public" else (0.45, 0.35)
    r = u()
    yaw = u(-50, 50) if r < front else (u(50, 130) * (1 if u() < 0.5 else -1) if r < front + side else u(130, 230))
    tilted = u() < (0.1 if domain == "public" else 0.14)
    roll = u(-55, 55) if tilted else u.triangular(18.0)
    return _kinematics(family, ang, jitter, radii, yaw, roll)


def _kinematics(family: str, a: dict[str, float], ln: dict[str, float], rad: dict[str, float],
                yaw: float, roll: float) -> _Skeleton:
    """Forward kinematics. Body frame: x = person's left, y = up, z = forward (facing)."""
    pelvis_rot = _mul(_rot("z", roll), _rot("y", yaw))
    torso_rot = _mul(pelvis_rot, _rot("y", a["twist"]), _rot("z", a["lean"]), _rot("x", a["bend"]))
    joints: list[Vec] = [_ORIGIN] * 16
    thorax = _at(_ORIGIN, torso_rot, (0.0, ln["torso"], 0.0))
    joints[THORAX] = thorax
    joints[NECK] = _at(thorax, _mul(torso_rot, _rot("x", 0.4 * a["nod"])), (0.0, ln["neck"], 0.0))
    head_rot = _mul(torso_rot, _rot("x", a["nod"]), _rot("z", a["tilt"]), _rot("y", a["head_yaw"]))
    joints[HEAD] = _at(joints[NECK], head_rot, (0.0, ln["head"], 0.0))
    hands, feet, torso = [], [], []
    for side in (-1, 1):
        hip_j, knee_j, ank_j, sho_j, elb_j, wri_j = _SIDE_JOINTS[side]
        s = "L." if side > 0 else "R."
        # Positive abduction swings the limb outwards (z-rotation towards its own side); flexion
        # is a negative x-rotation (forwards); internal rotation turns the forearm to the midline.
        thigh_rot = _mm(pelvis_rot, _zxy(side * a[s + "hip_abd"], -a[s + "hip_flex"], -side * a[s + "hip_rot"]))
        shin_rot = _mul(thigh_rot, _rot("x", a[s + "knee"]))  # knees bend backwards only
        joints[hip_j] = _at(_ORIGIN, pelvis_rot, (side * ln["hip"], 0.0, 0.0))
        joints[knee_j] = _at(joints[hip_j], thigh_rot, (0.0, -ln["thigh"], 0.0))
        joints[ank_j] = _at(joints[knee_j], shin_rot, (0.0, -ln["shin"], 0.0))
        feet.append(_at(joints[ank_j], shin_rot, (0.0, -0.025, ln["foot"])))
        arm_rot = _mm(torso_rot, _zxy(side * a[s + "sh_abd"], -a[s + "sh_flex"], -side * a[s + "sh_rot"]))
        forearm_rot = _mul(arm_rot, _rot("x", -a[s + "elbow"]))  # elbows bend forwards only
        joints[sho_j] = _at(thorax, torso_rot, (side * ln["shoulder"], -0.015, 0.0))
        joints[elb_j] = _at(joints[sho_j], arm_rot, (0.0, -ln["upper_arm"], 0.0))
        joints[wri_j] = _at(joints[elb_j], forearm_rot, (0.0, -ln["forearm"], 0.0))
        hands.append(_at(joints[wri_j], forearm_rot, (0.0, -ln["hand"], 0.0)))
        half_sh, half_hip = ln["shoulder"] + 0.6 * rad["upper_arm"], ln["hip"] + 0.9 * rad["thigh"]
        for depth in (-1, 1):
            torso.append(_at(thorax, torso_rot, (side * half_sh, 0.0, depth * rad["torso_depth"])))
            torso.append(_at(_ORIGIN, pelvis_rot, (side * half_hip, -0.035, depth * 0.9 * rad["torso_depth"])))
    head_axes = tuple(tuple(head_rot[i][c] for i in range(3)) for c in range(3))
    return _Skeleton(family, tuple(joints), tuple(torso), (hands[0], hands[1]), (feet[0], feet[1]),
                     head_axes, ln, rad)


# ----------------------------------------------------------------------------- projection / placement
@dataclass(frozen=True)
class SynthPose:
    """One placed person in image pixels (everything ``load_image`` needs to draw them)."""

    family: str
    joints: np.ndarray  # (16, 2) px
    visible: np.ndarray  # (16,) 1.0 inside the image
    depth: np.ndarray  # (16,) towards the camera, stature units
    joints3d: np.ndarray  # (16, 3) stature units, camera axes, pelvis at origin
    unit: float  # px per stature unit
    skeleton: _Skeleton
    offset: np.ndarray  # (2,) px of the 3D origin
    head: tuple[float, float, float, float, float, float]  # cx, cy, a, b, ux, uy (a along u)
    box: np.ndarray  # (4,) whole drawn person, px
    head_box: np.ndarray  # (4,) px

    def px(self, points) -> np.ndarray:
        """3D points (stature units) to image pixels (orthographic; image y points down)."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        return np.stack([p[:, 0], -p[:, 1]], axis=1) * self.unit + self.offset


def _head_ellipse(neck, top, half_width: float) -> tuple[float, float, float, float, float, float]:
    """The drawn head: an ellipse from chin (upper neck) to skull top, never narrower than wide."""
    nx, ny, tx, ty = float(neck[0]), float(neck[1]), float(top[0]), float(top[1])
    length = math.hypot(tx - nx, ty - ny)
    ux, uy = ((tx - nx) / length, (ty - ny) / length) if length > 1e-9 else (0.0, -1.0)
    return (nx + tx) / 2.0, (ny + ty) / 2.0, max(0.53 * length, half_width), half_width, ux, uy


def _square(head: tuple[float, ...]) -> tuple[float, float, float, float]:
    """Bounding square of the head ellipse (MPII head boxes span chin to head top)."""
    cx, cy, a, b, ux, uy = head
    half = max(math.sqrt((a * ux) ** 2 + (b * uy) ** 2), math.sqrt((a * uy) ** 2 + (b * ux) ** 2))
    return cx - half, cy - half, cx + half, cy + half


def _extent(sk: _Skeleton) -> tuple[float, float, float, float]:
    """Box (x1, y1, x2, y2) of everything drawn, in stature units with image-down y."""
    r = sk.radii
    joint_r = (r["shin"], r["thigh"], r["thigh"], r["thigh"], r["thigh"], r["shin"], 0.0, 0.0, r["neck"], 0.0,
               r["forearm"], r["upper_arm"], r["upper_arm"], r["upper_arm"], r["upper_arm"], r["forearm"])
    pts = [(p[0], -p[1], rr) for p, rr in zip(sk.joints, joint_r)] + [(p[0], -p[1], 0.0) for p in sk.torso]
    pts += [(p[0], -p[1], r["hand"]) for p in sk.hand_tips] + [(p[0], -p[1], r["foot"]) for p in sk.foot_tips]
    head = _square(_head_ellipse((sk.joints[NECK][0], -sk.joints[NECK][1]),
                                 (sk.joints[HEAD][0], -sk.joints[HEAD][1]), r["head"]))
    return (min(head[0], min(x - rr for x, _, rr in pts)), min(head[1], min(y - rr for _, y, rr in pts)),
            max(head[2], max(x + rr for x, _, rr in pts)), max(head[3], max(y + rr for _, y, rr in pts)))


def _place(sk: _Skeleton, u: _Draws, height_frac: float, truncate_p: float,
           edge: int | None = None, out_frac: tuple[float, float] = (0.15, 0.45)) -> SynthPose:
    """Scale the body to ``height_frac`` of the canvas and put it inside, or partly outside, the image."""
    ext = _extent(sk)
    w_u, h_u = ext[2] - ext[0], ext[3] - ext[1]
    unit = min(height_frac * IMAGE_SIZE / h_u, 0.92 * IMAGE_SIZE / w_u)
    w, h = w_u * unit, h_u * unit
    x, y = u(0, IMAGE_SIZE - w), u(0, IMAGE_SIZE - h)
    if edge is None and u() < truncate_p:
        edge = _pick(u(), (0.4, 0.25, 0.25, 0.1))
    if edge is not None:  # 0 bottom, 1 left, 2 right, 3 top
        t = u(*out_frac)
        x = {1: -t * w, 2: IMAGE_SIZE - (1 - t) * w}.get(edge, x)
        y = {0: IMAGE_SIZE - (1 - t) * h, 3: -t * h}.get(edge, y)
    ox, oy = x - ext[0] * unit, y - ext[1] * unit
    joints = [(px * unit + ox, -py * unit + oy) for px, py, _ in sk.joints]
    inside = [float(0 <= px <= IMAGE_SIZE - 1 and 0 <= py <= IMAGE_SIZE - 1) for px, py in joints]
    head = _head_ellipse(joints[NECK], joints[HEAD], sk.radii["head"] * unit)
    box = (ext[0] * unit + ox, ext[1] * unit + oy, ext[2] * unit + ox, ext[3] * unit + oy)
    j3 = np.array(sk.joints)
    return SynthPose(sk.family, np.array(joints), np.array(inside), j3[:, 2].copy(), j3, unit, sk,
                     np.array([ox, oy]), head, np.array(box), np.array(_square(head)))


def sample_pose(domain: str, seed: int, index: int) -> SynthPose:
    """The person of ``(domain, seed, index)``: geometry only, no pixels."""
    _check(domain, seed)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise DatasetError(f"SynthPose index must be an integer >= 0, got {index!r}")
    u = _Draws(_rng(domain, seed, index, _POSE))
    skeleton = _sample_skeleton(u, domain)
    lo, hi = (0.5, 0.85) if domain == "public" else (0.48, 0.82)
    return _place(skeleton, u, u(lo, hi), truncate_p=0.13)


def _record(domain: str, seed: int, index: int, pose: SynthPose) -> PersonRecord:
    center, scale = bbox_to_center_scale(pose.box)
    return PersonRecord(image=f"{domain}_{seed}_{index:06d}.png", image_id=_image_id(domain, seed, index),
                        center=center, scale=scale, joints=pose.joints.copy(), visible=pose.visible.copy(),
                        head_box=pose.head_box.copy())


# ----------------------------------------------------------------------------- appearance
_CIRCLE = np.array([[math.cos(math.pi * k / 8), math.sin(math.pi * k / 8)] for k in range(16)])
_CIRCLE.setflags(write=False)
_SKIN = ((60, 90, 140), (80, 120, 180), (100, 150, 205), (130, 175, 225), (160, 195, 235), (45, 65, 100))  # BGR
_HAIR = ((20, 20, 25), (30, 45, 70), (40, 80, 130), (110, 170, 200), (150, 150, 150), (25, 35, 120))
Colour = tuple[int, int, int]


@dataclass(frozen=True)
class _Look:
    """How one person is painted: per body part a BGR colour or a full-canvas texture."""

    paints: dict[str, Colour | np.ndarray]
    hair: Colour
    ink: Colour  # outlines and face features
    style: str  # "ellipse" limbs (public) or tapered "capsule" limbs (private)
    outline: bool


def _hsv(h: int, s: int, v: int) -> Colour:
    bgr = cv2.cvtColor(np.array([[[h, s, v]]], dtype=np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def _colour(rng: np.random.Generator, domain: str) -> Colour:
    """Public clothes are bright and saturated; private ones muted, dark and mostly cool."""
    if domain == "public":
        return _hsv(int(rng.integers(0, 180)), int(rng.integers(150, 256)), int(rng.integers(150, 256)))
    hue = int(rng.integers(80, 135)) if rng.random() < 0.7 else int(rng.integers(0, 180))
    return _hsv(hue, int(rng.integers(30, 120)), int(rng.integers(80, 210)))


def _blend(pattern: np.ndarray, c1: Colour, c2: Colour) -> np.ndarray:
    """Map a uint8 pattern (H, W) to colours between c1 (0) and c2 (255), in integer maths."""
    p = np.arange(256, dtype=np.int32)[:, None]
    table = (np.array(c1) * (255 - p) + np.array(c2) * p + 127) // 255
    return cv2.LUT(cv2.merge([pattern] * 3), table.astype(np.uint8).reshape(1, 256, 3))


def _smooth_noise(rng: np.random.Generator, cells: int) -> np.ndarray:
    """Low-frequency uint8 noise (H, W): a small random grid upsampled bilinearly (bit-exact for 8U)."""
    low = rng.integers(0, 256, (int(cells), int(cells)), dtype=np.uint8)
    return cv2.resize(low, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_LINEAR)


def _texture(rng: np.random.Generator, domain: str) -> Colour | np.ndarray:
    c1, c2 = _colour(rng, domain), _colour(rng, domain)
    public = domain == "public"
    kinds = ("solid", "stripes", "checker", "gradient") if public else ("solid", "noise", "gradient", "stripes")
    kind = kinds[_pick(rng.random(), (0.3, 0.35, 0.15, 0.2) if public else (0.2, 0.4, 0.2, 0.2))]
    if kind == "solid":
        return c1
    if kind in ("gradient", "noise"):
        return _blend(_smooth_noise(rng, 2 if kind == "gradient" else int(rng.integers(24, 64))), c1, c2)
    axis = np.arange(IMAGE_SIZE)
    period = int(rng.integers(5, 14) if public else rng.integers(2, 5))
    if kind == "checker":
        band = (axis // period % 2).astype(np.uint8)
        pattern = np.bitwise_xor.outer(band, band)
    else:  # stripes along a random lattice direction, via a lookup on a*x + b*y
        a, b = (int(v) for v in rng.integers(-2, 3, 2))
        a = a or 1
        values = np.add.outer(b * axis, a * axis) + 4 * IMAGE_SIZE
        pattern = (np.arange(10 * IMAGE_SIZE) // period % 2).astype(np.uint8)[values]
    if not public:  # faint pin-stripes
        c2 = tuple(min(c + 35, 255) for c in c1)
    return _blend(pattern * np.uint8(255), c1, c2)


def _sample_look(rng: np.random.Generator, domain: str, textured: bool = True) -> _Look:
    skin = tuple(int(np.clip(c + rng.integers(-12, 13), 0, 255)) for c in _SKIN[int(rng.integers(len(_SKIN)))])
    top = _texture(rng, domain) if textured else _colour(rng, domain)
    bottom = _texture(rng, domain) if textured else _colour(rng, domain)
    long_sleeves, long_pants = rng.random() < 0.5, rng.random() < 0.65
    paints = {"torso": top, "upper_arm": top, "forearm": top if long_sleeves else skin, "hand": skin,
              "neck": skin, "head": skin, "thigh": bottom, "shin": bottom if long_pants else skin,
              "foot": _colour(rng, domain)}
    hair = _HAIR[int(rng.integers(len(_HAIR)))]
    public = domain == "public"
    return _Look(paints, hair, (25, 25, 25) if public else (40, 45, 60), "ellipse" if public else "capsule", public)


# ----------------------------------------------------------------------------- drawing
def _ellipse(cx: float, cy: float, a: float, b: float, ux: float, uy: float) -> np.ndarray:
    return np.array([cx, cy]) + _CIRCLE[:, :1] * a * np.array([ux, uy]) + _CIRCLE[:, 1:] * b * np.array([-uy, ux])


def _ellipse_limb(p: np.ndarray, q: np.ndarray, r: float) -> np.ndarray:
    """An ellipse reaching half a radius past both joints, so the joints lie on the limb."""
    d = q - p
    length = float(math.hypot(d[0], d[1]))
    ux, uy = (d[0] / length, d[1] / length) if length > 1e-9 else (1.0, 0.0)
    return _ellipse(*((p + q) / 2.0), max(length / 2.0 + 0.5 * r, r), r, ux, uy)


def _capsule(p: np.ndarray, q: np.ndarray, r1: float, r2: float) -> np.ndarray:
    pts = np.concatenate([p + r1 * _CIRCLE, q + r2 * _CIRCLE]).astype(np.float32)
    return cv2.convexHull(pts).reshape(-1, 2).astype(np.float64)


def _parts(pose: SynthPose, style: str) -> list[tuple[float, str, np.ndarray]]:
    """Every body part as (depth, kind, convex polygon in px), sorted far to near (painter's order)."""
    sk, j, z = pose.skeleton, pose.joints, pose.depth
    r = {k: v * pose.unit for k, v in sk.radii.items()}
    limb = _ellipse_limb if style == "ellipse" else (lambda p, q, rr: _capsule(p, q, rr, 0.8 * rr))
    torso = cv2.convexHull(pose.px(sk.torso).astype(np.float32)).reshape(-1, 2).astype(np.float64)
    parts = [(float(np.mean([c[2] for c in sk.torso])), "torso", torso),
             ((z[THORAX] + z[NECK]) / 2 - 0.01, "neck", _capsule(j[THORAX], j[NECK], r["neck"], r["neck"])),
             ((z[NECK] + z[HEAD]) / 2 + 0.02, "head", _ellipse(*pose.head))]
    hands, feet = pose.px(sk.hand_tips), pose.px(sk.foot_tips)
    for k, side in enumerate((-1, 1)):
        hip, knee, ank, sho, elb, wri = _SIDE_JOINTS[side]
        for a, b, kind, bias in ((hip, knee, "thigh", 0.0), (knee, ank, "shin", 0.002),
                                 (sho, elb, "upper_arm", 0.01), (elb, wri, "forearm", 0.012)):
            parts.append(((z[a] + z[b]) / 2 + bias, kind, limb(j[a], j[b], r[kind])))
        parts.append(((z[wri] + sk.hand_tips[k][2]) / 2 + 0.014, "hand", (j[wri] + hands[k]) / 2 + r["hand"] * _CIRCLE))
        foot = _capsule(j[ank], feet[k], r["foot"], 0.8 * r["foot"])
        parts.append(((z[ank] + sk.foot_tips[k][2]) / 2 + 0.004, "foot", foot))
    order = sorted(range(len(parts)), key=lambda i: (parts[i][0], i))
    return [parts[i] for i in order]


def _fill(img: np.ndarray, poly: np.ndarray, paint: Colour | np.ndarray, gain: int = 256) -> None:
    """Alpha-blend ``paint`` (scaled by gain/256) into ``img`` inside a convex polygon (anti-aliased)."""
    if not isinstance(paint, np.ndarray):  # solid colour: let cv2 blend the anti-aliased edge
        colour = tuple((c * gain) >> 8 for c in paint)
        cv2.fillConvexPoly(img, np.round(poly * 16).astype(np.int32), colour, cv2.LINE_AA, 4)
        return
    x0, y0 = (max(int(math.floor(v)) - 1, 0) for v in poly.min(axis=0))
    x1, y1 = (min(int(math.ceil(v)) + 2, limit) for v, limit in zip(poly.max(axis=0), img.shape[1::-1]))
    if x0 >= x1 or y0 >= y1:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillConvexPoly(mask, np.round((poly - (x0, y0)) * 16).astype(np.int32), 255, cv2.LINE_AA, 4)
    roi = img[y0:y1, x0:x1]
    src = (paint[y0:y1, x0:x1].astype(np.uint16) * gain) >> 8
    alpha = mask[..., None].astype(np.uint16)
    alpha += alpha >> 7  # 0..256
    roi[...] = ((roi * (256 - alpha) + src * alpha + 128) >> 8).astype(np.uint8)


def _draw_head_details(img: np.ndarray, pose: SynthPose, look: _Look, gain: int) -> None:
    """Hair on the crown (covering the head seen from behind) and, facing us, eyes and a mouth."""
    cx, cy, a = pose.head[:3]
    left, up, fwd = (np.array(v) for v in pose.skeleton.head_axes)
    crown = np.array([up[0], -up[1]]) - 0.8 * np.array([fwd[0], -fwd[1]])
    crown = crown / max(float(np.hypot(*crown)), 1e-9)
    outline = _ellipse(*pose.head)
    cut = a * (0.3 * fwd[2] if fwd[2] > 0 else 0.75 * fwd[2])
    hair = outline[(outline - (cx, cy)) @ crown > cut]
    if len(hair) >= 3:
        _fill(img, hair, look.hair, gain)
    if fwd[2] > 0.15:
        centre, size = (pose.joints3d[NECK] + pose.joints3d[HEAD]) / 2, pose.skeleton.lengths["head"]
        radius = max(1.0, 0.011 * pose.unit)
        for offset in (0.15 * left + 0.07 * up, -0.15 * left + 0.07 * up, -0.25 * up):
            x, y = pose.px(centre + size * (offset + 0.36 * fwd))[0]
            centre16 = (int(round(x * 16)), int(round(y * 16)))
            cv2.circle(img, centre16, int(round(radius * 16)), look.ink, -1, cv2.LINE_AA, 4)


def paint_parts(img: np.ndarray, parts: list[tuple[float, str, np.ndarray]], paints: dict[str, Colour | np.ndarray],
                *, outline: Colour | None = None, on_head: Callable[[int], None] | None = None) -> np.ndarray:
    """Paint ``(depth, kind, polygon)`` parts in the order given (far to near), in place.

    Parts further from the camera (negative depth) are shaded darker; ``outline``
    inks each polygon's edge; ``on_head(gain)`` runs right after the head is
    painted. SynthPose's people and the anonymizer's avatars
    (:func:`dp_pose_zoo.video.anonymize.paint_mannequin`) are both drawn by this one painter.
    """
    for depth, kind, poly in parts:
        gain = int(256 * min(max(1.0 + 1.8 * depth, 0.68), 1.0))
        _fill(img, poly, paints[kind], gain)
        if outline is not None:
            cv2.polylines(img, [np.round(poly * 16).astype(np.int32)], True, outline, 1, cv2.LINE_AA, 4)
        if kind == "head" and on_head is not None:
            on_head(gain)
    return img


def _draw_figure(img: np.ndarray, pose: SynthPose, look: _Look) -> None:
    """Paint a person in depth order, face and hair on the head."""
    paint_parts(img, _parts(pose, look.style), look.paints, outline=look.ink if look.outline else None,
                on_head=lambda gain: _draw_head_details(img, pose, look, gain))


def mannequin_parts(keypoints: np.ndarray, shown: np.ndarray, stature: float) -> list[tuple[float, str, np.ndarray]]:
    """Body parts, in painter's order, of a faceless mannequin posed on 2D ``keypoints`` (MPII-16, pixels).

    The limbs, neck and head are SynthPose's own shapes (tapered capsules, the
    chin-to-crown head ellipse) with its proportions scaled to ``stature``
    pixels; only parts whose joints are all ``shown`` are made. With no depth
    to go on, the person's right side is drawn first and shaded, the torso
    next, then the head and the left side.
    """
    j = np.asarray(keypoints, dtype=np.float64)
    ok = np.asarray(shown, dtype=bool)
    r = {k: v * float(stature) for k, v in _RADII.items()}
    far, mid, near = -0.06, -0.03, 0.0
    parts: list[tuple[float, str, np.ndarray]] = []
    torso_joints = [(k, r["upper_arm"] if k in (L_SHO, R_SHO) else r["thigh"])
                    for k in (R_SHO, L_SHO, L_HIP, R_HIP) if ok[k]]
    if len(torso_joints) >= 3:
        pts = np.concatenate([j[k] + rr * _CIRCLE for k, rr in torso_joints]).astype(np.float32)
        parts.append((mid, "torso", cv2.convexHull(pts).reshape(-1, 2).astype(np.float64)))
    neck_base = j[THORAX] if ok[THORAX] else ((j[L_SHO] + j[R_SHO]) / 2 if ok[L_SHO] and ok[R_SHO] else None)
    if neck_base is not None and ok[NECK]:
        parts.append((mid, "neck", _capsule(neck_base, j[NECK], r["neck"], r["neck"])))
    if ok[NECK] and ok[HEAD]:
        parts.append((near, "head", _ellipse(*_head_ellipse(j[NECK], j[HEAD], r["head"]))))
    for side, depth in ((-1, far), (1, near)):
        hip, knee, ank, sho, elb, wri = _SIDE_JOINTS[side]
        for a, b, kind in ((hip, knee, "thigh"), (knee, ank, "shin"), (sho, elb, "upper_arm"), (elb, wri, "forearm")):
            if ok[a] and ok[b]:
                parts.append((depth, kind, _capsule(j[a], j[b], r[kind], 0.8 * r[kind])))
        if ok[wri]:
            parts.append((depth, "hand", j[wri] + r["hand"] * _CIRCLE))
    order = sorted(range(len(parts)), key=lambda i: (parts[i][0], i))
    return [parts[i] for i in order]


def _background(rng: np.random.Generator, domain: str) -> np.ndarray:
    """Public: bright gradients with flat geometric clutter. Private: dark blotchy texture with lines."""
    if domain == "public":
        light = [_hsv(int(rng.integers(0, 180)), int(rng.integers(30, 120)), int(rng.integers(170, 250)))
                 for _ in range(3)]
        img = _blend(_smooth_noise(rng, 2), light[0], light[1])
        if rng.random() < 0.6:
            img[int(rng.integers(140, 230)):] = light[2]
        for _ in range(int(rng.integers(3, 10))):
            colour, kind = _colour(rng, domain), int(rng.integers(3))
            p = rng.integers(-20, IMAGE_SIZE + 20, (3, 2)).astype(np.int32)
            if kind == 0:
                cv2.rectangle(img, tuple(p[0]), tuple(p[0] + rng.integers(10, 70, 2)), colour, -1)
            elif kind == 1:
                cv2.circle(img, tuple(p[0]), int(rng.integers(5, 35)), colour, -1, cv2.LINE_AA)
            else:
                cv2.fillConvexPoly(img, cv2.convexHull(p), colour, cv2.LINE_AA)
        return img
    dark = [_hsv(int(rng.integers(0, 180)), int(rng.integers(10, 90)), int(rng.integers(20, 100))) for _ in range(2)]
    img = _blend(_smooth_noise(rng, int(rng.integers(4, 10))), dark[0], dark[1])
    img = cv2.add(img, cv2.cvtColor(_smooth_noise(rng, 64) // 6, cv2.COLOR_GRAY2BGR))
    for _ in range(int(rng.integers(4, 12))):
        p = rng.integers(-40, IMAGE_SIZE + 40, (2, 2))
        grey = int(rng.integers(20, 130))
        cv2.line(img, tuple(int(v) for v in p[0]), tuple(int(v) for v in p[1]), (grey, grey, grey + 10),
                 int(rng.integers(1, 4)), cv2.LINE_AA)
    return img


def _camera(img: np.ndarray, rng: np.random.Generator, domain: str) -> np.ndarray:
    """Public: a small exposure change. Private: blur, uneven coloured lighting and sensor noise."""
    levels = np.arange(256, dtype=np.int32)
    if domain == "public":
        return cv2.LUT(img, np.minimum((levels * int(rng.integers(225, 270))) >> 8, 255).astype(np.uint8))
    img = cv2.GaussianBlur(img, (5, 5), rng.uniform(0.6, 1.3))
    # Uneven, coloured light: a smooth gain map (140..255) times a per-channel cast, as uint8 / 255.
    table = ((140 + ((levels * 115) >> 8))[:, None] * rng.integers(200, 257, 3)) >> 8
    gain = cv2.LUT(cv2.merge([_smooth_noise(rng, 3)] * 3), table.astype(np.uint8).reshape(1, 256, 3))
    img = cv2.multiply(img, gain, scale=1.0 / 255.0)
    # Triangular sensor noise in [-15, 15], the same on all channels: the difference of two byte planes.
    planes = np.frombuffer(rng.bytes(2 * IMAGE_SIZE * IMAGE_SIZE), np.uint8).reshape(2, IMAGE_SIZE, IMAGE_SIZE) >> 4
    return cv2.subtract(cv2.add(img, cv2.merge([planes[0]] * 3)), cv2.merge([planes[1]] * 3))


def _compose(domain: str, seed: int, index: int, person: bool = True) -> tuple[np.ndarray, SynthPose]:
    pose = sample_pose(domain, seed, index)
    bg_rng = _rng(domain, seed, index, _BACKGROUND)
    img = _background(bg_rng, domain)
    if bg_rng.random() < (0.25 if domain == "public" else 0.35):  # a partial bystander at the side
        u = _Draws(bg_rng)
        bystander = _place(_sample_skeleton(u, domain), u, u(0.3, 0.55), 0.0, edge=1 + (u() < 0.5),
                           out_frac=(0.4, 0.65))
        _draw_figure(img, bystander, _sample_look(bg_rng, domain, textured=False))
    if person:
        _draw_figure(img, pose, _sample_look(_rng(domain, seed, index, _LOOK), domain))
    return _camera(img, _rng(domain, seed, index, _CAMERA), domain), pose


# ----------------------------------------------------------------------------- public API
def render(domain: str, seed: int, index: int) -> tuple[np.ndarray, PersonRecord]:
    """Draw person ``index`` of ``(domain, seed)``: a BGR uint8 image and its record."""
    image, pose = _compose(domain, seed, index)
    return image, _record(domain, seed, index, pose)


def render_background(domain: str, seed: int, index: int) -> np.ndarray:
    """The same image as :func:`render` without the annotated person (for tests and debugging)."""
    return _compose(domain, seed, index, person=False)[0]


def load_image(record: PersonRecord) -> np.ndarray:
    """Re-render the image of a SynthPose record from the domain, seed and index in its image_id."""
    return _compose(*_parse_image_id(record.image_id))[0]


def synthpose_dataset(domain: str, n: int, seed: int, *, name: str | None = None) -> PoseDataset:
    """``n`` people of ``domain`` from ``seed``; images are rendered lazily by ``load_image``."""
    _check(domain, seed, n)
    records = [_record(domain, seed, i, sample_pose(domain, seed, i)) for i in range(int(n))]
    return PoseDataset(name or f"synthpose-{domain}-{seed}", records, load_image)


def load_split(split: str, n: int | None = None) -> PoseDataset:
    """'private-test' -> synthpose_dataset('private', n or DEFAULT_SIZES['test'], SPLIT_SEEDS['private-test'])."""
    if split not in SPLIT_SEEDS:
        raise DatasetError(f"unknown SynthPose split {split!r}; expected one of {', '.join(SPLIT_SEEDS)}")
    domain, kind = split.split("-")
    n = DEFAULT_SIZES[kind] if n is None else n
    return synthpose_dataset(domain, n, SPLIT_SEEDS[split], name=f"synthpose-{split}")


def _annotation(record: PersonRecord) -> dict:
    """MPII's JSON layout as mmpose stores it, plus head_box and image_id; floats keep full precision."""
    return {"image": record.image, "center": [float(v) for v in record.center], "scale": float(record.scale),
            "joints": [[float(x), float(y)] for x, y in record.joints],
            "joints_vis": [int(v) for v in record.visible], "head_box": [float(v) for v in record.head_box],
            "image_id": record.image_id}


def write_split(out_dir, *, domain: str, n: int, seed: int, split: str = "train",
                progress: bool = False) -> pathlib.Path:
    """Write images/<image> (PNG) and annotations/mpii_<split>.json in MPII's JSON layout; return out_dir.

    Everything goes to a temporary sibling directory first, renamed to ``out_dir``
    only when complete, so a crash never leaves a half-written split behind.
    """
    _check(domain, seed, n)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(split)):
        raise DatasetError(f"split name {split!r} must be letters, digits, '_', '.' or '-'")
    out_dir = pathlib.Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DatasetError(f"{out_dir} already exists and is not an empty directory; choose a new path")
    tmp = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / "images").mkdir(parents=True)
        (tmp / "annotations").mkdir()
        indices = range(int(n))
        if progress:
            from tqdm import tqdm
            indices = tqdm(indices, desc=f"synthpose {domain} {split}", unit="img")
        annotations = []
        for i in indices:
            image, record = render(domain, seed, i)
            ok, png = cv2.imencode(".png", image)
            if not ok:
                raise DatasetError(f"could not encode {record.image} as PNG")
            (tmp / "images" / record.image).write_bytes(png.tobytes())
            annotations.append(_annotation(record))
        (tmp / "annotations" / f"mpii_{split}.json").write_text(json.dumps(annotations))
        if out_dir.exists():
            out_dir.rmdir()  # empty, checked above
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
