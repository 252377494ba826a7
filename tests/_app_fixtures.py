"""Shared helpers for the app tests: a second zoo model in a Hub cache (hub_server.fake_cache), the clip as
frames and as a y4m.

Not a conftest (that file belongs to the whole suite): tests/test_app*.py
import what they need from here, as the inference tests do from _infer_fixtures.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
from hub_server import fake_cache  # noqa: F401  (the app tests' Hub cache, as test_zoo's)

DATA = Path(__file__).parent / "data"
CLIP = DATA / "vtest-clip" / "vtest-clip.avi"
PHOTO = DATA / "coco-sample" / "000000000785.jpg"
SECOND_REPO = "test/default-relabelled-eps05"
SECOND_EPSILON = 0.5


def default_card():
    """The embedded default's card: the tests take its name and epsilon from it, so a new default needs no edit."""
    from dp_pose_zoo.card import load_card
    from dp_pose_zoo.zoo import default_dir

    return load_card(default_dir())


def rounded_up(value: float, decimals: int) -> str:
    """``value`` rounded UP to ``decimals`` places, computed here independently of the package's formatting."""
    scale = 10 ** decimals
    return f"{math.ceil(value * scale - 1e-9) / scale:.{decimals}f}"


def label_epsilon(value: float) -> str:
    """The drawn label's epsilon: two decimals rounded up, trailing zeros dropped but one (0.99722 -> 1.0)."""
    text = rounded_up(value, 2).rstrip("0")
    return text + "0" if text.endswith(".") else text


def relabelled_default(folder: Path, *, epsilon: float = SECOND_EPSILON,
                       name: str = "default_relabelled_eps05") -> Path:
    """The embedded default's ONNX under a card (and ONNX metadata) claiming another epsilon.

    The same weights, so it draws the same skeletons; only its privacy block
    differs, which is what the model switch must show. A test fixture only:
    no real training spent this epsilon.
    """
    import onnx

    from dp_pose_zoo.card import PrivacyBlock, load_card, render_card
    from dp_pose_zoo.runtime.metadata import METADATA_PREFIX
    from dp_pose_zoo.zoo import default_dir

    source = default_dir()
    card = load_card(source)
    privacy = PrivacyBlock(**{**card.privacy.to_dict(), "epsilon": epsilon})
    text = render_card(name=name, privacy=privacy, weights_sha256=card.weights_sha256, train_data=card.train_data,
                       pckh=card.pckh, eval_data=card.eval_data, base_model=card.data.base_model,
                       base_model_data=getattr(card.data, "base_model_datasets", None),
                       description="Test fixture: the embedded default's weights under another privacy label.")
    model = onnx.load(str(source / "model.onnx"))
    props = {p.key: p.value for p in model.metadata_props}
    meta_privacy = json.loads(props[METADATA_PREFIX + "privacy"])
    meta_privacy["epsilon"] = epsilon
    props.update({METADATA_PREFIX + "privacy": json.dumps(meta_privacy, sort_keys=True),
                  METADATA_PREFIX + "model_name": name, METADATA_PREFIX + "card": text})
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))
    (folder / "README.md").write_text(text, encoding="utf-8")
    return folder


def clip_frames(limit: int | None = None) -> list[np.ndarray]:
    """The shipped clip's frames (BGR)."""
    capture = cv2.VideoCapture(str(CLIP))
    frames = []
    while limit is None or len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert frames, f"cannot decode {CLIP}"
    return frames


def write_y4m(frames: list[np.ndarray], path: Path, *, fps: int = 10) -> Path:
    """Frames as a YUV4MPEG2 file Chromium's fake camera plays: 4:2:0 (I420 planes), one ``FRAME`` each."""
    h, w = frames[0].shape[:2]
    assert h % 2 == 0 and w % 2 == 0, "I420 needs even sizes"
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def skeleton_pixels(annotated_bgr: np.ndarray, raw_bgr: np.ndarray, *, changed: int = 60,
                    tolerance: int = 60) -> dict[str, int]:
    """Pixels drawn by :func:`dp_pose_zoo.video.draw.draw_skeleton`: changed from the raw frame and of a skeleton colour.

    ``{"centre": n, "left": n, "right": n, "joints": n}`` -- bones by side
    colour, joints as white dots -- counting only pixels that differ from
    ``raw_bgr`` by more than ``changed`` in some channel and lie within
    ``tolerance`` of the colour in every channel.
    """
    from dp_pose_zoo.video.draw import JOINT_COLOR, SIDE_COLORS

    a = annotated_bgr.astype(np.int16)
    moved = np.abs(a - raw_bgr.astype(np.int16)).max(axis=2) > changed
    counts = {}
    for name, color in (("centre", SIDE_COLORS[0]), ("left", SIDE_COLORS[1]), ("right", SIDE_COLORS[2]),
                        ("joints", JOINT_COLOR)):
        near = np.abs(a - np.array(color, dtype=np.int16)).max(axis=2) <= tolerance
        counts[name] = int((near & moved).sum())
    return counts


def label_mismatch(annotated_bgr: np.ndarray, text: str, *, changed: int = 100) -> int:
    """Pixels that drawing ``text`` as the privacy label would change: 0 when the frame already carries ``text``.

    Redraws the label (:func:`dp_pose_zoo.video.draw.draw_label`, top-left, the scale
    the frame's width gives) over the frame and counts pixels that move by more
    than ``changed`` in some channel. The band is opaque and lossless PNG keeps
    it exact, so the frame's own label gives 0; another label gives hundreds
    (``"ε=0.5 ..."`` against ``"ε=1.0 ..."`` on a 384-pixel-wide frame: hundreds).
    """
    from dp_pose_zoo.video.draw import draw_label

    redrawn = draw_label(annotated_bgr.copy(), text)
    return int((np.abs(redrawn.astype(np.int16) - annotated_bgr.astype(np.int16)).max(axis=2) > changed).sum())


def best_match(image_bgr: np.ndarray, frames: list[np.ndarray]) -> tuple[int, float]:
    """Index of the clip frame ``image_bgr`` was made from, and the mean absolute difference to it."""
    h, w = frames[0].shape[:2]
    if image_bgr.shape[:2] != (h, w):
        image_bgr = cv2.resize(image_bgr, (w, h), interpolation=cv2.INTER_AREA)
    diffs = [float(np.mean(np.abs(image_bgr.astype(np.int16) - f.astype(np.int16)))) for f in frames]
    best = int(np.argmin(diffs))
    return best, diffs[best]
