"""Inference on a whole source, by composition: source -> boxes/tracks -> pose -> smoothing -> sinks.

Nothing here knows how any part works: :func:`run_inference` wires a
:class:`~dp_pose_zoo.video.sources.Source`, a detector, a
:class:`~dp_pose_zoo.runtime.PoseEstimator` (inside a
:class:`~dp_pose_zoo.video.tracking.PoseTracker`), an optional
:class:`~dp_pose_zoo.video.smoothing.PoseSmoother`, the drawing and anonymizing
functions and the sinks, and returns a :class:`Summary`.

The run folder is staged under a temporary name and renamed when the run
ends (:func:`dp_pose_zoo.io.atomic_dir`), so an error or a kill leaves no
half-written outputs. A video that breaks off mid-way is not an error: the
frames before the break are kept and :attr:`Summary.stopped_early` says
where it stopped. A webcam run ends with Ctrl-C (or ``max_frames``) and keeps
everything up to then.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import OutputError
from ..io import atomic_dir
from ..skeleton import DEFAULT_KPT_THR
from .anonymize import anonymize, hidden_regions
from .detection import BoxesFile, FullFrameDetector
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
    """What the JSON says about the model: path, input size, precision, weights hash, privacy block."""
    meta = estimator.metadata
    privacy, verified = model_privacy(estimator)
    return {"path": str(getattr(estimator, "path", "")), "input_size": list(meta.get("input_size", ())),
            "precision": meta.get("precision"), "weights_sha256": meta.get("weights_sha256"),
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


def run_inference(source: Source, estimator, detector: Callable, *, out_dir: str | os.PathLike,
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
    codec = output_codec(options, independent_frames=source.independent_frames)
    ext, fourcc, lossless = CODECS[codec]
    out = prepare_run_dir(out_dir)
    privacy, verified = model_privacy(estimator)
    independent = source.independent_frames
    box_source = "file" if isinstance(detector, BoxesFile) else ("full" if isinstance(detector, FullFrameDetector)
                                                                  else "detector")
    tracker = PoseTracker(estimator, detector, det_every=1 if independent else options.det_every,
                          kpt_thr=options.kpt_thr, box_source=box_source)
    smoother = PoseSmoother() if options.smooth and not independent else None
    header = {"source": source.describe(), "model": model_description(estimator),
              "settings": {**options.to_dict(), "codec": codec, "recoverable": recovery_key is not None,
                           "detector": getattr(detector, "name", type(detector).__name__), **(settings or {})}}
    video_name = f"{source.name}{ext}"
    frames = people_total = 0
    tracks: set[int] = set()
    try:
        staging_ctx = atomic_dir(out)
        staging = staging_ctx.__enter__()
    except OSError as e:
        raise OutputError(f"cannot create output folder {out}: {e.strerror or e}") from None
    sinks: list = []
    start = time.perf_counter()
    try:
        sidecar = None
        if recovery_key is not None:
            from .recovery import IMAGES_OUTPUT, SidecarWriter, sidecar_path

            output_name = IMAGES_OUTPUT if independent else video_name
            sidecar = SidecarWriter(sidecar_path(staging / output_name), recovery_key, output=output_name,
                                    lossless=lossless)
            sinks.append(sidecar)
            header["recovery"] = sidecar.describe()
        json_sink = JsonSink(staging / "keypoints.json", header=header)
        sinks.append(json_sink)
        csv_sink = CsvSink(staging / "keypoints.csv")
        sinks.append(csv_sink)
        image_sink = ImageSink(staging, ext=ext) if independent else None
        video_sink: VideoSink | None = None
        try:
            for frame in source:
                if independent:
                    tracker.reset()
                given = detector.boxes_for(frame.index, frame.name) if isinstance(detector, BoxesFile) else None
                found = tracker(frame.image, boxes=given)
                if smoother is not None:
                    smoother.smooth_frame(found, frame.timestamp)
                canvas = render(frame.image, found, options=options, privacy=privacy, verified=verified)
                if image_sink is not None:
                    written_name = image_sink.write(canvas, frame.name).name
                else:
                    if video_sink is None:
                        video_sink = VideoSink(staging / video_name, fps=source.fps or DEFAULT_VIDEO_FPS,
                                               size=(canvas.shape[1], canvas.shape[0]), fourcc=fourcc)
                        sinks.append(video_sink)
                    if sidecar is not None and (canvas.shape[1], canvas.shape[0]) != video_sink.size:
                        raise OutputError(f"frame {frame.index} changes the video's size: a recoverable "
                                          "output needs frames of one size")
                    video_sink.write(canvas)
                    written_name = frame.name
                if sidecar is not None:
                    sidecar.write_frame(frame.image, canvas, name=written_name)
                record = frame_record(frame, found)
                if options.anonymize:
                    record["hidden"] = hidden_regions(frame.image.shape, found, mode=options.anonymize,
                                                      region=options.anonymize_region, kpt_thr=options.kpt_thr)
                json_sink.write(record)
                csv_sink.write(record)
                frames += 1
                people_total += len(found)
                tracks.update(p.track_id for p in found)
                if on_frame is not None:
                    on_frame(frame, found)
        except KeyboardInterrupt:
            if source.kind != "webcam" or frames == 0:
                raise
            log.info("stopped by the user after %d frames", frames)
        seconds = time.perf_counter() - start
        summary = Summary(frames=frames, people=people_total, tracks=people_total if independent else len(tracks),
                          seconds=seconds, run_dir=out, stopped_early=source.stopped_early,
                          skipped=[str(p) for p in getattr(source, "skipped", [])])
        json_sink.close(summary=summary.to_dict())
        csv_sink.close()
        if video_sink is not None:
            video_sink.close()
        if sidecar is not None:
            sidecar.close()
        names = [s.path.name for s in (json_sink, csv_sink, video_sink, sidecar) if s is not None]
        names += [p.name for p in (image_sink.paths if image_sink else [])]
    except BaseException as e:
        for sink in sinks:
            sink.abort()
        source.close()
        staging_ctx.__exit__(type(e), e, e.__traceback__)
        raise
    source.close()
    try:
        staging_ctx.__exit__(None, None, None)
    except OSError as e:
        raise OutputError(f"cannot finish output folder {out}: {e}") from None
    summary.outputs = [out / n for n in names]
    return summary


def render(image, people: list, *, options: InferOptions, privacy: dict | None, verified: bool = True):
    """The annotated frame: anonymized first (if asked), then skeletons, boxes and the privacy label
    (``verified=False``: a claim no model card vouches for, said so in the label)."""
    base = anonymize(image, people, mode=options.anonymize, region=options.anonymize_region,
                     kpt_thr=options.kpt_thr) if options.anonymize else image
    return draw_people(base, people, kpt_thr=options.kpt_thr, boxes=options.draw_boxes, privacy=privacy,
                       verified=verified, copy=base is image)
