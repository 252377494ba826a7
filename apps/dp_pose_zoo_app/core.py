"""What the webcam app does, without gradio: plain functions and small classes on the torch-free runtime.

- :func:`model_choices` / :func:`choose`: the zoo (embedded default and cached
  models) as dropdown entries labelled with epsilon, delta and C.
- :func:`privacy_markdown`: a card's privacy block as Markdown (epsilon rounded UP).
- :class:`ModelLoader`: a :class:`~dp_pose_zoo.runtime.PoseEstimator` per model, opened once.
- :class:`LiveSession`: one browser's webcam stream through the
  :class:`~dp_pose_zoo.video.pipeline.FramePipeline` that
  :func:`~dp_pose_zoo.video.pipeline.run_inference` runs for a file, and its frames/s.
- :func:`process_upload`: an uploaded video or image through
  :func:`~dp_pose_zoo.video.pipeline.run_inference`, or a :class:`SourceError` that
  says in one line what is wrong with the file.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from dp_pose_zoo.card import Card, format_epsilon
from dp_pose_zoo.errors import SourceError, UnknownModelError
from dp_pose_zoo.release import ONNX_FILES, ONNX_PATHS
from dp_pose_zoo.video.detection import make_detector
from dp_pose_zoo.video.draw import privacy_label
from dp_pose_zoo.video.pipeline import FramePipeline, InferOptions, run_inference
from dp_pose_zoo.video.sources import Frame
from dp_pose_zoo.zoo import list_zoo

log = logging.getLogger(__name__)

# No recovery key is ever taken here: recoverable outputs are a CLI step (`dp-pose infer --recoverable`) on a
# trusted machine, never a switch of an app that may be reachable over a network.
ANONYMIZE_CHOICES: tuple[str, ...] = ("off", "blur", "pixelate", "skeleton", "avatar")
# Who the pose model runs on: people found by the detector (HOG: whole, upright people), or one person
# filling the frame (someone close to a laptop camera, whom a pedestrian detector does not find).
PEOPLE_CHOICES: dict[str, str] = {"detect": "auto", "whole frame": "full"}
UPLOAD_MAX_FRAMES = 300
UPLOAD_KEEP_SECONDS = 3600.0  # outputs of an upload are deleted after this (see prune_uploads)
_ONNX_NAMES = tuple(p for p in ONNX_PATHS if p.endswith(ONNX_FILES["fp32"]))  # the release layout's fp32 files


# -- the zoo as dropdown choices --------------------------------------------------------------------
@dataclass(frozen=True)
class ModelChoice:
    """One model the app can run: ``key`` is what ``from_pretrained`` opens ("default" or a path)."""

    key: str
    name: str
    card: Card

    @property
    def label(self) -> str:
        """``"default · ε=1.0 (δ=1e-05, C=0.1) dp-sgd"``: the drawn label's own wording (epsilon rounded up)."""
        return f"{self.name} · {privacy_label(self.card.privacy.to_dict())}"


def model_choices(*, cache_dir: str | os.PathLike | None = None) -> list[ModelChoice]:
    """The embedded default and every cached zoo model that has an ONNX to run (no Hub traffic)."""
    choices = []
    for entry in list_zoo(cache=True, hub=False, cache_dir=cache_dir):
        if "embedded" in entry.where:
            choices.append(ModelChoice("default", entry.name, entry.card))
        elif entry.path is not None and any((entry.path / n).is_file() for n in _ONNX_NAMES):
            choices.append(ModelChoice(str(entry.path), entry.name, entry.card))
        else:
            log.info("%s is cached without an ONNX model; not offered (run `dp-pose export` on it)", entry.name)
    return choices


def choose(choices: list[ModelChoice], model: str) -> tuple[list[ModelChoice], str]:
    """``choices`` with ``model`` (``dp-pose demo --model``) among them, and the key to start on.

    A name or path the zoo already lists is selected; anything else is resolved
    as ``dp-pose infer --model`` resolves it (a folder, an ``.onnx`` beside its
    card, ``OWNER/REPO``) and put first. Errors are the runtime's, raised
    before the app starts.
    """
    for choice in choices:
        if model in (choice.name, choice.key):
            return choices, choice.key
    from dp_pose_zoo.runtime.pretrained import resolve

    onnx_path, card = resolve(model)
    choice = ModelChoice(str(onnx_path), model, card)
    return [choice, *choices], choice.key


def _text(value) -> str:
    """A card value on one Markdown line (cards are data: no line breaks, no HTML)."""
    return " ".join(str(value).split()).replace("<", "&lt;")


def privacy_markdown(choice: ModelChoice) -> str:
    """The card's privacy block as a Markdown list; epsilon is rounded UP (never shown below what was spent)."""
    card, p = choice.card, choice.card.privacy
    lines = [f"### Privacy of `{_text(card.name or choice.name)}`", ""]
    if not choice.card.private:
        lines += ["**ε = ∞: no privacy guarantee** (trained without differential privacy).", ""]
    rows = [("method", p.method)]
    if card.private:
        rows += [("ε (epsilon)", f"**{format_epsilon(float(p.epsilon), 3)}** (rounded up)"),
                 ("δ (delta)", p.delta), ("C (clipping norm)", p.clipping_norm)]
        if p.accountant:
            rows.append(("accountant", p.accountant))
        # as the card says them: rounding either way could flatter the guarantee
        rows += [("noise multiplier", p.noise_multiplier), ("sample rate", p.sample_rate)]
        if p.projection_dim:
            rows.append(("projection dim", p.projection_dim))
        if isinstance(p.public_data, dict):
            rows.append(("public data", f"{p.public_data.get('name')} ({p.public_data.get('size')}, "
                                        f"disjoint: {p.public_data.get('disjoint')})"))
    rows += [("steps · epochs", f"{p.steps} · {p.epochs}"), ("strategy", p.strategy),
             ("privacy unit", p.privacy_unit), ("trained on", card.train_data)]
    if card.base_model_data:
        covered = "; ε does not cover it" if card.private else ""
        rows.append(("initialised from", f"{card.data.base_model}, trained on {card.base_model_data}{covered}"))
    pckh = card.pckh or {}
    if "Mean" in pckh:
        rows.append(("PCKh (α = 0.5)", f"{pckh['Mean']:.2f} on {card.eval_data}"))
    lines += [*(f"- {k}: {_text(v)}" for k, v in rows if v is not None), ""]
    lines.append("The guarantee covers the people in the model's training data, not the people in front of "
                 "this camera: *anonymize* hides them in the output.")
    return "\n".join(lines)


class ModelLoader:
    """Opens each chosen model once (``from_pretrained``: card and ONNX checked) and keeps it open.

    One lock per model: opening a model (seconds) holds up only the callers of
    that model, never the live streams already running another one.
    """

    def __init__(self, choices: list[ModelChoice], *, threads: int | None = None):
        self.choices = {c.key: c for c in choices}
        self.threads = threads
        self._open: dict[str, object] = {}
        self._opening = {key: threading.Lock() for key in self.choices}

    def choice(self, key: str) -> ModelChoice:
        if key not in self.choices:
            raise UnknownModelError(f"{key!r} is not one of the app's models")
        return self.choices[key]

    def __call__(self, key: str):
        """The :class:`~dp_pose_zoo.runtime.PoseEstimator` of ``key``; a model that fails to open raises
        each time it is asked for (nothing half-open is kept)."""
        choice = self.choice(key)
        with self._opening[key]:
            if key not in self._open:
                from dp_pose_zoo.runtime.pretrained import from_pretrained

                self._open[key] = from_pretrained(choice.key, threads=self.threads)
            return self._open[key]


def make_options(*, kpt_thr: float, smooth: bool, anonymize: str | None) -> InferOptions:
    """The pipeline's options from the app's switches (``anonymize`` "off" or None: no anonymizing)."""
    if anonymize not in (None, *ANONYMIZE_CHOICES):
        raise ValueError(f"anonymize must be one of {', '.join(ANONYMIZE_CHOICES)}, got {anonymize!r}")
    if kpt_thr is None or not math.isfinite(float(kpt_thr)):
        raise ValueError(f"keypoint threshold must be a number, got {kpt_thr!r}")
    return InferOptions(smooth=bool(smooth), kpt_thr=float(kpt_thr),
                        anonymize=None if anonymize in (None, "off") else anonymize)


def _detector_spec(people: str) -> str:
    if people not in PEOPLE_CHOICES:
        raise ValueError(f"people must be one of {', '.join(PEOPLE_CHOICES)}, got {people!r}")
    return PEOPLE_CHOICES[people]


# -- the live stream -------------------------------------------------------------------------------
@dataclass(frozen=True)
class LiveStats:
    """What the page shows under the live video."""

    fps: float | None  # frames processed per second over the last few frames; None until two arrived
    ms: float  # time this frame took (detect, pose, draw)
    people: int

    def markdown(self) -> str:
        rate = f"**{self.fps:.1f} frames/s**" if self.fps is not None else "**measuring frames/s...**"
        who = "1 person" if self.people == 1 else f"{self.people} people"
        return f"{rate} · {self.ms:.0f} ms per frame · {who}"


class LiveSession:
    """One browser's webcam stream: its frame pipeline (tracks, smoothing), kept between frames, and its frames/s.

    ``session(frame_rgb, estimator, model_key=..., options=...)`` returns the
    annotated frame (RGB, as Gradio gives and takes them) and :class:`LiveStats`.
    A new model or people mode starts a new tracker; the threshold and the
    switches apply from the next frame on.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, window: int = 10):
        self._clock = clock
        self._arrivals: deque[float] = deque(maxlen=window)
        self._pipeline: FramePipeline | None = None
        self._setup: tuple[str, str] | None = None
        self._frames = 0

    @property
    def fps(self) -> float | None:
        if len(self._arrivals) < 2 or self._arrivals[-1] <= self._arrivals[0]:
            return None
        return (len(self._arrivals) - 1) / (self._arrivals[-1] - self._arrivals[0])

    def __call__(self, frame_rgb: np.ndarray, estimator, *, model_key: str, options: InferOptions,
                 people: str = "detect") -> tuple[np.ndarray, LiveStats]:
        start = self._clock()
        self._arrivals.append(start)
        frame = np.asarray(frame_rgb)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] not in (3, 4):
            raise ValueError(f"a webcam frame must be (H, W, 3) uint8 RGB, got {frame.dtype} {frame.shape}")
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR if frame.shape[2] == 3 else cv2.COLOR_RGBA2BGR)
        if self._setup != (model_key, people):
            spec = _detector_spec(people)
            # The whole frame costs nothing to "detect": every frame, so its box never drifts with the keypoints.
            self._pipeline = FramePipeline(estimator, make_detector(spec, video=True), options,
                                           det_every=1 if spec == "full" else None)
            self._setup = (model_key, people)
        self._pipeline.update(options)
        found, canvas = self._pipeline(Frame(bgr, index=self._frames, name=f"frame_{self._frames:06d}",
                                             timestamp=start))
        self._frames += 1
        stats = LiveStats(fps=self.fps, ms=(self._clock() - start) * 1000.0, people=len(found))
        return cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB), stats


# -- uploads ---------------------------------------------------------------------------------------
@dataclass
class UploadResult:
    """An uploaded file's outputs: the annotated file(s) first, then keypoints.json and keypoints.csv."""

    files: list[Path]
    preview: np.ndarray | None  # RGB: the annotated image, or a frame of the annotated video
    summary: dict = field(default_factory=dict)
    line: str = ""

    @property
    def json_path(self) -> Path:
        return next(p for p in self.files if p.name == "keypoints.json")


def process_upload(path: str | os.PathLike | None, estimator, *, out_root: str | os.PathLike,
                   options: InferOptions, people: str = "detect", model_key: str = "default",
                   max_frames: int = UPLOAD_MAX_FRAMES) -> UploadResult:
    """Run ``estimator`` over an uploaded video or image; :class:`SourceError` (one line) if it is not one."""
    from dp_pose_zoo.video.sources import open_source, quiet_video_backends

    if path is None:
        raise SourceError("no file uploaded: choose a video or an image first")
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path.name}: the upload did not arrive (no such file)")
    if path.stat().st_size == 0:
        raise SourceError(f"{path.name} is empty (0 bytes): upload a video or an image")
    spec = _detector_spec(people)
    quiet_video_backends()
    try:
        source = open_source(path, max_frames=max_frames)
    except SourceError as e:  # the runtime names the server's temporary path; the user knows the file's name
        raise SourceError(str(e).replace(str(path), path.name)) from None
    Path(out_root).mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix="upload-", dir=out_root)) / (path.stem or "upload")
    with source, make_detector(spec, video=not source.independent_frames) as detector:
        summary = run_inference(source, estimator, detector, out_dir=out, options=options,
                                settings={"model_arg": model_key, "max_frames": max_frames, "app": "dp-pose demo"})
    if summary.frames == 0:
        raise SourceError(f"{path.name}: no frame could be decoded")
    annotated = [p for p in summary.outputs if p.suffix not in (".json", ".csv")]
    tables = sorted((p for p in summary.outputs if p.suffix in (".json", ".csv")), key=lambda p: p.suffix != ".json")
    line = summary.line().split(" -> ")[0]
    if summary.frames >= max_frames and not source.independent_frames:
        line += f" (the first {max_frames} frames)"
    return UploadResult(files=annotated + tables, preview=_preview(annotated), summary=summary.to_dict(), line=line)


def prune_uploads(out_root: str | os.PathLike, *, max_age: float = UPLOAD_KEEP_SECONDS,
                  now: float | None = None) -> int:
    """Delete the upload folders older than ``max_age`` seconds; how many went.

    Uploads show people: the app keeps their outputs no longer than Gradio
    keeps its copies (``delete_cache`` in the page), not for the server's lifetime.
    """
    now = time.time() if now is None else now
    gone = 0
    for folder in Path(out_root).glob("upload-*"):
        try:
            if folder.is_dir() and now - folder.stat().st_mtime > max_age:
                shutil.rmtree(folder)
                gone += 1
        except OSError as e:  # another request's folder, removed meanwhile: nothing to do
            log.debug("cannot prune %s: %s", folder, e)
    return gone


def _preview(annotated: list[Path]) -> np.ndarray | None:
    """The first annotated image, or the middle frame of the annotated video, as RGB."""
    if not annotated:
        return None
    first = annotated[0]
    if first.suffix.lower() == ".mp4":
        capture = cv2.VideoCapture(os.fspath(first))
        try:
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            if count > 1:
                capture.set(cv2.CAP_PROP_POS_FRAMES, count // 2)
            ok, image = capture.read()
        finally:
            capture.release()
        image = image if ok else None
    else:
        image = cv2.imread(os.fspath(first))
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
