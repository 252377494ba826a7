"""Leeds Sports Pose (LSP) and LSP-extended in their own format, mapped to MPII-16.

Layout (as both archives unpack)::

    <root>/joints.mat     the MATLAB array ``joints``
    <root>/images/im00001.jpg ...   (LSP-extended: 5 digits; LSP: im0001.jpg, 4 digits)

The two releases store ``joints`` differently:

* LSP-extended: shape ``(14, 3, N)``, row 2 is 1 where the joint is visible;
* LSP: shape ``(3, 14, N)``, row 2 is 1 where the joint is *occluded* (the
  flag is inverted, as every LSP-to-MPII converter does).

LSP's 14 joints are 14 of MPII's 16; its neck is MPII's upper neck. LSP has no
pelvis and no thorax: those two stay unannotated (visibility 0, weight 0 in the
loss), never derived. An invisible joint's coordinates are junk (LSP-extended
holds values like ``(0, -27)``): it is marked invisible and so never enters the
loss or the person box.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DatasetError, DatasetNotFoundError
from ..geometry import bbox_to_center_scale
from ..skeleton import JOINT_INDEX, NUM_JOINTS
from .base import PersonRecord, PoseDataset, read_mat_array
from .mpii import image_loader

NUM_LSP_JOINTS = 14
#: MPII index of each LSP joint, in LSP's order (r_ankle ... l_wrist, neck, head top).
LSP_TO_MPII: tuple[int, ...] = tuple(JOINT_INDEX[name] for name in (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "upper_neck", "head_top",
))
# The joints' extent is tighter than the body (feet, hands and skull stick out), so the person box is
# the visible joints' box grown by this; the MPII subset's scale is built the same way (1.15 x joint height).
BOX_MARGIN = 1.15
MIN_VISIBLE = 4  # fewer visible joints give no usable box and too little to learn from


def load_lsp(root: str | Path, *, min_visible: int = MIN_VISIBLE) -> PoseDataset:
    """The people of an LSP or LSP-extended folder (``joints.mat`` + ``images/``).

    People with fewer than ``min_visible`` visible joints are left out. Head
    boxes (for PCKh) are squares around the head-top/neck midpoint whose
    0.6 x diagonal equals the head-top to neck distance, as the MPII subset's.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"LSP folder not found: {root}")
    mat_file = root / "joints.mat"
    if not mat_file.is_file():
        raise DatasetNotFoundError(f"LSP annotation file not found: {mat_file} (expected joints.mat beside images/)")
    image_dir = root / "images"
    if not image_dir.is_dir():
        raise DatasetNotFoundError(f"LSP image folder not found: {image_dir}")
    xy, visible, extended = read_lsp_joints(mat_file)
    digits = 5 if extended else 4  # im00001.jpg in LSP-extended, im0001.jpg in LSP
    records = []
    for i in range(xy.shape[0]):
        record = _person(xy[i], visible[i], f"im{i + 1:0{digits}d}.jpg", min_visible)
        if record is not None:
            records.append(record)
    missing = [r.image for r in records if not (image_dir / r.image).is_file()]
    if missing:
        raise DatasetError(f"{mat_file}: {len(missing)} annotated image(s) missing from {image_dir} "
                           f"(first: {missing[0]})")
    return PoseDataset(name=f"lsp/{root.name}", records=records, load_image=image_loader(image_dir))


def read_lsp_joints(mat_file: Path) -> tuple[np.ndarray, np.ndarray, bool]:
    """``joints.mat`` as ``xy (N, 14, 2)``, ``visible (N, 14)`` in {0, 1}, and whether it is LSP-extended's layout."""
    joints = read_mat_array(mat_file, "joints")
    if joints.ndim == 2:  # MATLAB drops the trailing axis of a one-person file
        joints = joints[:, :, None]
    extended = joints.ndim == 3 and joints.shape[:2] == (NUM_LSP_JOINTS, 3)
    if extended:
        xy, visible = joints[:, :2].transpose(2, 0, 1), joints[:, 2].T > 0
    elif joints.ndim == 3 and joints.shape[:2] == (3, NUM_LSP_JOINTS):  # LSP: the flag means occluded
        xy, visible = joints[:2].transpose(2, 1, 0), joints[2].T == 0
    else:
        raise DatasetError(f"{mat_file}: 'joints' has shape {joints.shape}, expected (14, 3, N) as LSP-extended "
                           "stores it or (3, 14, N) as LSP does")
    finite = np.isfinite(xy).all(axis=-1)
    return xy, (visible & finite).astype(np.float64), extended


def _person(xy: np.ndarray, visible: np.ndarray, image: str, min_visible: int) -> PersonRecord | None:
    if int(visible.sum()) < min_visible:
        return None
    joints = np.zeros((NUM_JOINTS, 2))
    vis = np.zeros(NUM_JOINTS)
    joints[list(LSP_TO_MPII)] = np.where(visible[:, None] > 0, xy, 0.0)  # junk coordinates never kept
    vis[list(LSP_TO_MPII)] = visible
    seen = joints[vis > 0]
    x1, y1 = seen.min(axis=0)
    x2, y2 = seen.max(axis=0)
    center, scale = bbox_to_center_scale((x1, y1, x2, y2))
    return PersonRecord(image=image, image_id=f"lsp-{image}", center=center, scale=scale * BOX_MARGIN,
                        joints=joints, visible=vis, head_box=head_box_from_neck(joints, vis))


def head_box_from_neck(joints: np.ndarray, visible: np.ndarray) -> np.ndarray | None:
    """The square head box whose PCKh head size (0.6 x diagonal) is the head-top to upper-neck distance."""
    top, neck = JOINT_INDEX["head_top"], JOINT_INDEX["upper_neck"]
    if not (visible[top] > 0 and visible[neck] > 0):
        return None
    size = float(np.linalg.norm(joints[top] - joints[neck]))
    if not size > 0:
        return None
    half = size / (0.6 * np.sqrt(2.0)) / 2.0
    mid = (joints[top] + joints[neck]) / 2.0
    return np.array([mid[0] - half, mid[1] - half, mid[0] + half, mid[1] + half])
