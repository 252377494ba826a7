"""Inference by composition: source -> boxes/tracks -> pose -> smoothing -> drawing, anonymizing -> sinks.

Nothing here knows how any part works. :class:`FramePipeline` composes, frame
by frame, a :class:`~dp_pose_zoo.video.detection.Detector` and a
:class:`~dp_pose_zoo.runtime.PoseEstimator` (inside a
:class:`~dp_pose_zoo.video.tracking.PoseTracker`), an optional
:class:`~dp_pose_zoo.video.smoothing.PoseSmoother` and :func:`render`: the
app's live webcam runs it as it is. :func:`run_inference` runs it over a whole
:class:`~dp_pose_zoo.video.sources.Source` into the sinks of a run folder
(:class:`RunSinks`) and returns a :class:`Summary`; ``dp-pose infer`` and the
app's uploads call it.

The run folder is staged under a temporary name and renamed when the run
ends (:func:`dp_pose_zoo.io.atomic_dir`), so an error or a kill leaves no
half-written outputs. A video that breaks off mid-way is not an error: the
frames before the break are kept and :attr:`Summary.stopped_early` says
where it stopped. A webcam run ends with Ctrl-C (or ``max_frames``) and keeps
everything up to then.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import OutputError
from ..io import atomic_dir
from ..skeleton import DEFAULT_KPT_THR
from .anonymize import anonymize, hidden_regions
from .detection import Detector
from .draw import draw_people
from .sinks import CsvSink, ImageSink, JsonSink, VideoSink, frame_record
from .smoothing import PoseSmoother
from .sources import Frame, Source
from .tracking import PoseTracker

log = logging.getLogger(__name__)

DEFAULT_VIDEO_FPS = 10.0  # for a webcam (or a video) that does not say
# --codec: (file extension, OpenCV fourcc or None for images, lossless)
CODECS: dict[str, tuple[str, str | None, bool]] = {
    "mp4v": (".mp4", "mp4v", False), "ffv1": (".mkv", "FFV1", True), "jpg": (".jpg", None, False),
    "png": (".png", None, True)}
VIDEO_CODECS, IMAGE_CODECS = ("mp4v", "ffv1"), ("jpg", "png")


@dataclass(frozen=True)
class InferOptions:
    """How to run; the CLI's flags, one to one."""

    det_every: int = 5
    smooth: bool = False
    kpt_thr: float = DEFAULT_KPT_THR
    anonymize: str | None = None  # blur | pixelate | skeleton | avatar
    anonymize_region: str = "face"  # face | body
    draw_boxes: bool = True
    codec: str | None = None  # video: mp4v (default) | ffv1; images: jpg (default) | png

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Summary:
    """What a run did and where its outputs are."""

    frames: int
    people: int  # person-instances over all frames
    tracks: int  # distinct track ids (video) or people (images)
    seconds: float  # wall time of the frame loop: decode, detect, pose, draw, write
    run_dir: Path
    outputs: list[Path] = field(default_factory=list)
    stopped_early: str | None = None
    skipped: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def people_per_frame(self) -> float:
        return self.people / self.frames if self.frames else 0.0

    def to_dict(self) -> dict:
        return {"frames": self.frames, "people": self.people, "tracks": self.tracks,
                "seconds": round(self.seconds, 3), "fps": round(self.fps, 3),
                "people_per_frame": round(self.people_per_frame, 3), "stopped_early": self.stopped_early,
                "skipped": self.skipped}

    def line(self) -> str:
        """The one-line summary the CLI prints."""
        who = f"{self.tracks} tracks" if self.tracks != self.people else f"{self.people} people"
        return (f"{self.frames} frames, {self.people} people found ({self.people_per_frame:.1f}/frame, {who}), "
                f"{self.fps:.1f} frames/s -> {self.run_dir}")


def model_privacy(estimator) -> tuple[dict | None, bool]:
    """The privacy block to show, and whether a model card vouches for it.

    ``from_pretrained`` attaches the card it checked the ONNX against: its block is the claim.
    A bare ONNX has only its metadata's block (or none), which nothing has checked.
    """
    card = getattr(estimator, "card", None)
    if card is not None:
        return card.privacy.to_dict(), True
    return estimator.metadata.get("privacy"), False


def model_description(estimator) -> dict:
    """What the JSON says about the model: path, input size, precision, flip test, weights hash, privacy block."""
    meta = estimator.metadata
    privacy, verified = model_privacy(estimator)
    return {"path": str(getattr(estimator, "path", "")), "input_size": list(meta.get("input_size", ())),
            "precision": meta.get("precision"), "flip_test": bool(getattr(estimator, "flip_test", False)),
            "weights_sha256": meta.get("weights_sha256"),
            "model_name": meta.get("model_name"), "privacy": privacy, "privacy_verified": verified}


def prepare_run_dir(out_dir: str | os.PathLike) -> Path:
    """Check that ``out_dir`` can be created (and does not exist) before any work is done."""
    out = Path(out_dir)
    if out.exists():
        raise OutputError(f"output folder {out} already exists; choose another --out")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output folder {out}: {e.strerror or e}") from None
    if not os.access(out.parent, os.W_OK):
        raise OutputError(f"cannot create output folder {out}: {out.parent} is not writable")
    return out


def output_codec(options: InferOptions, *, independent_frames: bool) -> str:
    """The codec a run writes with: ``options.codec``, checked against the source's kind, or the default."""
    allowed = IMAGE_CODECS if independent_frames else VIDEO_CODECS
    if options.codec is None:
        return allowed[0]
    if options.codec not in allowed:
        what = "images are" if independent_frames else "a video is"
        raise OutputError(f"--codec {options.codec} does not fit this source: {what} written as "
                          f"{' or '.join(allowed)}")
    return options.codec


class FramePipeline:
    """``FramePipeline(estimator, detector, options)(frame) -> (people, annotated image)``.

    ``independent_frames`` (a folder of photos): every frame is detected
    afresh and nothing is smoothed across frames. :meth:`update` applies new
    options from the next frame on, keeping the tracks (the app's switches).
    """

    def __init__(self, estimator, detector: Detector | Callable, options: InferOptions, *,
                 independent_frames: bool = False, det_every: int | None = None):
        self.independent_frames = independent_frames
        self.tracker = PoseTracker(estimator, detector, kpt_thr=options.kpt_thr,
                                   det_every=1 if independent_frames else (det_every or options.det_every))
        self.privacy, self.verified = model_privacy(estimator)
        self.smoother: PoseSmoother | None = None
        self.update(options)

    @property
    def detector(self) -> Detector:
        return self.tracker.detector

    def update(self, options: InferOptions) -> None:
        """Threshold and switches of ``options`` from the next frame on; smoothing switched on starts afresh."""
        self.options = options
        self.tracker.kpt_thr = options.kpt_thr
        smooth = options.smooth and not self.independent_frames
        self.smoother = (self.smoother or PoseSmoother()) if smooth else None

    def __call__(self, frame: Frame) -> tuple[list, np.ndarray]:
        if self.independent_frames:
            self.tracker.reset()
        people = self.tracker(frame)
        if self.smoother is not None:
            self.smoother.smooth_frame(people, frame.timestamp)
        return people, render(frame.image, people, options=self.options, privacy=self.privacy,
                              verified=self.verified)


class RunSinks:
    """The outputs of one run folder, entered on ``stack``: the sealed sidecar (with ``recovery_key``),
    ``keypoints.json``, ``keypoints.csv`` and the annotated video or images. :meth:`write` sends a frame to
    all of them; the stack finishes them all or aborts them all."""

    def __init__(self, stack: contextlib.ExitStack, folder: Path, *, source: Source, options: InferOptions,
                 codec: str, header: dict, recovery_key: bytes | None = None):
        ext, fourcc, lossless = CODECS[codec]
        self.options = options
        self.independent_frames = source.independent_frames
        video_name = f"{source.name}{ext}"
        self.sidecar = None
        if recovery_key is not None:
            from .recovery import IMAGES_OUTPUT, SidecarWriter, sidecar_path  # cryptography: only when asked

            output_name = IMAGES_OUTPUT if self.independent_frames else video_name
            self.sidecar = stack.enter_context(SidecarWriter(sidecar_path(folder / output_name), recovery_key,
                                                             output=output_name, lossless=lossless))
            header = {**header, "recovery": self.sidecar.describe()}
        self.json = stack.enter_context(JsonSink(folder / "keypoints.json", header=header))
        self.csv = stack.enter_context(CsvSink(folder / "keypoints.csv"))
        self.pictures = stack.enter_context(
            ImageSink(folder, ext=ext) if self.independent_frames
            else VideoSink(folder / video_name, fps=source.fps or DEFAULT_VIDEO_FPS, fourcc=fourcc))

    def write(self, frame: Frame, people: list, canvas: np.ndarray) -> None:
        if self.sidecar is not None and not self.independent_frames and \
                self.pictures.size not in (None, (canvas.shape[1], canvas.shape[0])):
            raise OutputError(f"frame {frame.index} changes the video's size: a recoverable output needs frames "
                              "of one size")
        written_name = self.pictures.write(canvas, frame.name)
        if self.sidecar is not None:
            self.sidecar.write_frame(frame.image, canvas, name=written_name)
        record = frame_record(frame, people)
        if self.options.anonymize:
            record["hidden"] = hidden_regions(frame.image.shape, people, mode=self.options.anonymize,
                                              region=self.options.anonymize_region, kpt_thr=self.options.kpt_thr)
        self.json.write(record)
        self.csv.write(record)

    def names(self) -> list[str]:
        """The file names written: the tables, the video (or images) and the sidecar."""
        sidecar = [self.sidecar.path] if self.sidecar is not None else []
        return [p.name for p in (self.json.path, self.csv.path, *self.pictures.paths, *sidecar)]


def _stage_run_dir(stack: contextlib.ExitStack, out: Path) -> Path:
    """The staging folder of ``out`` (:func:`~dp_pose_zoo.io.atomic_dir`), entered on ``stack``."""
    try:
        return stack.enter_context(atomic_dir(out))
    except OSError as e:
        raise OutputError(f"cannot create output folder {out}: {e.strerror or e}") from None


def run_inference(source: Source, estimator, detector: Detector | Callable, *, out_dir: str | os.PathLike,
                  options: InferOptions | None = None, on_frame: Callable[[Frame, list], None] | None = None,
                  settings: dict | None = None, recovery_key: bytes | None = None) -> Summary:
    """Run ``estimator`` over every frame of ``source`` and write the run folder ``out_dir``.

    With ``recovery_key`` (and ``options.anonymize``) the original pixels of every
    change made to a frame are sealed into a sidecar beside the output
    (:mod:`dp_pose_zoo.video.recovery`); the key itself is never written anywhere.
    """
    options = options or InferOptions()
    if recovery_key is not None and not options.anonymize:
        raise OutputError("--recoverable needs --anonymize: there is nothing to recover otherwise")
    independent = source.independent_frames
    codec = output_codec(options, independent_frames=independent)
    out = prepare_run_dir(out_dir)
    annotate = FramePipeline(estimator, detector, options, independent_frames=independent)
    header = {"source": source.describe(), "model": model_description(estimator),
              "settings": {**options.to_dict(), "codec": codec, "recoverable": recovery_key is not None,
                           "detector": annotate.detector.name, **(settings or {})}}
    frames = people_total = 0
    tracks: set[int] = set()
    with contextlib.ExitStack() as run:
        staging = _stage_run_dir(run, out)
        start = time.perf_counter()
        with source, contextlib.ExitStack() as stack:  # the sinks finish, then the source closes
            sinks = RunSinks(stack, staging, source=source, options=options, codec=codec, header=header,
                             recovery_key=recovery_key)
            try:
                for frame in source:
                    found, canvas = annotate(frame)
                    sinks.write(frame, found, canvas)
                    frames += 1
                    people_total += len(found)
                    tracks.update(p.track_id for p in found)
                    if on_frame is not None:
                        on_frame(frame, found)
            except KeyboardInterrupt:
                if source.kind != "webcam" or frames == 0:
                    raise
                log.info("stopped by the user after %d frames", frames)
            summary = Summary(frames=frames, people=people_total,
                              tracks=people_total if independent else len(tracks),
                              seconds=time.perf_counter() - start, run_dir=out, stopped_early=source.stopped_early,
                              skipped=[str(p) for p in getattr(source, "skipped", [])])
            sinks.json.summary = summary.to_dict()
        commit = run.pop_all()  # the staged folder is renamed into place only now, its own errors said so
    try:
        commit.close()
    except OSError as e:
        raise OutputError(f"cannot finish output folder {out}: {e}") from None
    summary.outputs = [out / name for name in sinks.names()]
    return summary


def render(image, people: list, *, options: InferOptions, privacy: dict | None, verified: bool = True):
    """The annotated frame: anonymized first (if asked), then skeletons, boxes and the privacy label
    (``verified=False``: a claim no model card vouches for, said so in the label)."""
    base = anonymize(image, people, mode=options.anonymize, region=options.anonymize_region,
                     kpt_thr=options.kpt_thr) if options.anonymize else image
    return draw_people(base, people, kpt_thr=options.kpt_thr, boxes=options.draw_boxes, privacy=privacy,
                       verified=verified, copy=base is image)
