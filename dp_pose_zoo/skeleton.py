"""The MPII-16 skeleton as plain data, and the COCO-17 to MPII-16 mapping.

The zoo predicts MPII's 16 joints in MPII's order. COCO has no pelvis, thorax,
upper neck or head top: those are derived from neighbouring joints and marked
as derived, so an evaluation can leave them out.
"""

from __future__ import annotations

import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "pelvis", "thorax", "upper_neck", "head_top",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
)
NUM_JOINTS = len(JOINT_NAMES)
JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}

# Left/right pairs swapped by a horizontal flip.
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))

# Bones for drawing, each with a side: 0 centre, 1 left, 2 right (colours follow the side).
LIMBS: tuple[tuple[int, int, int], ...] = (
    (0, 1, 2), (1, 2, 2), (2, 6, 2), (5, 4, 1), (4, 3, 1), (3, 6, 1),
    (6, 7, 0), (7, 8, 0), (8, 9, 0),
    (10, 11, 2), (11, 12, 2), (12, 7, 2), (15, 14, 1), (14, 13, 1), (13, 7, 1),
)

# PCKh groups as MPII tables print them (left and right counted together).
PCKH_GROUPS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("Head", (9,)),
    ("Shoulder", (12, 13)),
    ("Elbow", (11, 14)),
    ("Wrist", (10, 15)),
    ("Hip", (2, 3)),
    ("Knee", (1, 4)),
    ("Ankle", (0, 5)),
)
# Joints scored under this are hidden when drawn and ignored when boxes follow keypoints. Our
# SimCC scores (the smaller axis' peak logit, as RTMPose reports them) sit lower than RTMPose's:
# the default model's median joint score on real footage is ~0.25, where rtmlib's 0.3 hid most.
DEFAULT_KPT_THR = 0.15

# Joints left out of the PCKh Mean, as in MPII's evaluation.
PCKH_EXCLUDED: tuple[int, ...] = (6, 7)

# The 12 limb joints (ankles, knees, hips, wrists, elbows, shoulders): what MPII, COCO, LSP and
# BlazePose all annotate or predict directly, with no pelvis, thorax, upper neck or head top.
LIMB_JOINTS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15)

FLIP_INDEX = np.arange(NUM_JOINTS)
for _a, _b in FLIP_PAIRS:
    FLIP_INDEX[_a], FLIP_INDEX[_b] = _b, _a
FLIP_INDEX.setflags(write=False)

COCO_JOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)

# MPII joints taken straight from one COCO joint.
_COCO_DIRECT = {0: 16, 1: 14, 2: 12, 3: 11, 4: 13, 5: 15, 10: 10, 11: 8, 12: 6, 13: 5, 14: 7, 15: 9}
# MPII joints that COCO lacks and that are computed from others.
DERIVED_FROM_COCO: tuple[int, ...] = (6, 7, 8, 9)


def coco_to_mpii(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map COCO keypoints ``(17, 3)`` [x, y, v] to MPII-16.

    Returns ``joints (16, 2)``, ``visible (16,)`` in {0, 1}, and
    ``derived (16,)`` True where a joint is computed rather than annotated.
    A derived joint is visible only when every joint it is made from is.
    """
    kp = np.asarray(keypoints, dtype=np.float64).reshape(17, 3)
    xy, vis = kp[:, :2], kp[:, 2] > 0
    joints = np.zeros((NUM_JOINTS, 2))
    visible = np.zeros(NUM_JOINTS)
    for mpii, coco in _COCO_DIRECT.items():
        joints[mpii] = xy[coco]
        visible[mpii] = float(vis[coco])

    def mid(a: int, b: int) -> tuple[np.ndarray, bool]:
        return (xy[a] + xy[b]) / 2.0, bool(vis[a] and vis[b])

    pelvis, pelvis_ok = mid(11, 12)
    thorax, thorax_ok = mid(5, 6)
    face = [i for i in range(5) if vis[i]]
    head_ok = thorax_ok and len(face) >= 2
    head = xy[face].mean(axis=0) if face else thorax
    # The upper neck sits between the thorax and the face centre; the head top
    # is as far above the face centre as the neck is below it.
    neck = thorax + 0.5 * (head - thorax)
    top = head + (head - neck)
    for idx, point, ok in ((6, pelvis, pelvis_ok), (7, thorax, thorax_ok), (8, neck, head_ok), (9, top, head_ok)):
        joints[idx] = point if ok else 0.0
        visible[idx] = float(ok)
    derived = np.zeros(NUM_JOINTS, dtype=bool)
    derived[list(DERIVED_FROM_COCO)] = True
    return joints, visible, derived
