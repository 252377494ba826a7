"""Where frames come from: a video file, an image, a folder, a glob or a webcam index.

Every source is opened eagerly -- and its first frame decoded -- by
:func:`open_source`, so a missing, unreadable or empty input fails before any
output is created. Iterating a source yields :class:`Frame` objects with an
index, a name (for output files) and a timestamp in seconds.

A video that breaks off mid-way (a truncated download, a cut-off recording)
yields every frame decoded before the break; :attr:`Source.stopped_early`
then says where it stopped, so the caller can keep the good part and say so.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..errors import SourceError, SourceNotFoundError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
GLOB_CHARS = "*?["
# Container frame counts can be estimates (duration x fps); a shortfall of this
# many frames or fewer is not reported as a break.
FRAME_COUNT_SLACK = 1
# OpenCV takes a camera index as a C int; a negative one crashes its V4L backend (a segfault, not an error).
MAX_WEBCAM_INDEX = 2**31 - 1
_WEBCAM_SPEC = re.compile(r"\s*[0-9]+\s*")  # ASCII digits only: "²".isdigit() is True but int() refuses it


@dataclass(frozen=True)
class Frame:
    """One decoded BGR frame and where it sits in its source."""

    image: np.ndarray
    index: int  # 0-based position in the source
    name: str  # stem for output files: "frame_000012", or the image's file stem
    timestamp: float  # seconds since the source's start (images: the index, 1 s apart)


def quiet_video_backends() -> None:
    """Silence FFmpeg's and OpenCV's own stderr chatter; our errors say what went wrong in one line.

    FFmpeg reads its level when the first capture opens, so call this before any.
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


class Source:
    """Base of every source: iterate for frames; ``kind``, ``name``, ``fps``, ``frame_count``."""

    kind: str = "source"

    def __init__(self, *, name: str, fps: float | None, frame_count: int | None, max_frames: int | None):
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}")
        self.name = name
        self.fps = fps
        self.announced_frames = frame_count
        self.max_frames = max_frames
        self.stopped_early: str | None = None
        self.frames_read = 0

    @property
    def frame_count(self) -> int | None:
        """Frames this run will read (the announced count capped by ``max_frames``); None if unknown."""
        if self.announced_frames is None:
            return self.max_frames
        return min(self.announced_frames, self.max_frames) if self.max_frames else self.announced_frames

    @property
    def independent_frames(self) -> bool:
        """True when consecutive frames are unrelated pictures (no tracking across them)."""
        return False

    def __iter__(self) -> Iterator[Frame]:
        for frame in self._frames():
            yield frame
            self.frames_read += 1
            if self.max_frames is not None and self.frames_read >= self.max_frames:
                break
        self.close()

    def _frames(self) -> Iterator[Frame]:
        raise NotImplementedError(f"{type(self).__name__} must implement _frames")

    def close(self) -> None:
        """Release the underlying capture (idempotent)."""

    def describe(self) -> dict:
        """A JSON-ready description for output files."""
        return {"kind": self.kind, "name": self.name, "fps": self.fps, "frame_count": self.announced_frames}

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _CaptureSource(Source):
    """A cv2.VideoCapture read ahead by one frame, so an empty or dead capture fails at open time."""

    def __init__(self, capture: cv2.VideoCapture, *, label: str, name: str, max_frames: int | None):
        self._capture = capture
        self._label = label
        fps = capture.get(cv2.CAP_PROP_FPS)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        super().__init__(name=name, fps=fps if fps and fps > 0 and np.isfinite(fps) else None,
                         frame_count=count if count > 0 else None, max_frames=max_frames)
        ok, first = capture.read()
        if not ok or first is None:
            capture.release()
            raise self._no_frames_error()
        self._first = first
        self.height, self.width = first.shape[:2]

    def _no_frames_error(self) -> SourceError:
        return SourceError(f"{self._label} has no frames")

    def _timestamp(self, index: int, start: float) -> float:
        return index / self.fps if self.fps else float(index)

    def _frames(self) -> Iterator[Frame]:
        start = time.monotonic()
        image, index = self._first, 0
        self._first = None
        while image is not None:
            yield Frame(image=image, index=index, name=f"frame_{index:06d}", timestamp=self._timestamp(index, start))
            index += 1
            if self.max_frames is not None and index >= self.max_frames:
                return
            ok, image = self._capture.read()
            if not ok:
                image = None
        self._check_complete(index)

    def _check_complete(self, decoded: int) -> None:
        """Set :attr:`stopped_early` when fewer frames decoded than the container announced."""

    def describe(self) -> dict:
        return {**super().describe(), "width": self.width, "height": self.height}

    def close(self) -> None:
        self._capture.release()


class VideoSource(_CaptureSource):
    """A video file, decoded by OpenCV's FFmpeg backend."""

    kind = "video"

    def __init__(self, path: str | os.PathLike, *, max_frames: int | None = None):
        self.path = Path(path)
        capture = cv2.VideoCapture(os.fspath(self.path))
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"cannot decode {self.path}: not a video OpenCV can read, or corrupt")
        super().__init__(capture, label=str(self.path), name=self.path.stem, max_frames=max_frames)

    def _check_complete(self, decoded: int) -> None:
        count = self.announced_frames
        if count is not None and decoded < count - FRAME_COUNT_SLACK:
            self.stopped_early = (f"{self.path.name} broke off at frame {decoded} (0-based) of the {count} it "
                                  f"announces; kept the {decoded} frames before it")
            log.warning("%s", self.stopped_early)

    def describe(self) -> dict:
        return {**super().describe(), "path": str(self.path)}


class WebcamSource(_CaptureSource):
    """A camera by index (``dp-pose infer 0``); runs until stopped (Ctrl-C) or ``max_frames``."""

    kind = "webcam"

    def __init__(self, index: int, *, max_frames: int | None = None):
        self.index = index
        if not 0 <= index <= MAX_WEBCAM_INDEX:
            raise SourceError(f"webcam {index} did not open (no such camera: an index is 0 to {MAX_WEBCAM_INDEX})")
        capture = cv2.VideoCapture(index)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"webcam {index} did not open (no such camera, or it is busy)")
        super().__init__(capture, label=f"webcam {index}", name=f"webcam{index}", max_frames=max_frames)
        self.announced_frames = None  # a live stream has no length

    def _no_frames_error(self) -> SourceError:
        return SourceError(f"webcam {self.index} opened but gave no frame")

    def _timestamp(self, index: int, start: float) -> float:
        return time.monotonic() - start


class ImageSource(Source):
    """One image, or many (a folder or a glob), each an independent picture."""

    kind = "images"

    def __init__(self, paths: list[Path], *, name: str, max_frames: int | None = None):
        if not paths:
            raise SourceNotFoundError(f"no images in {name}")
        super().__init__(name=name, fps=None, frame_count=len(paths), max_frames=max_frames)
        self.paths = paths
        self.skipped: list[Path] = []
        self._first = self._read_first()

    @property
    def independent_frames(self) -> bool:
        return True

    def _read_first(self) -> tuple[int, np.ndarray]:
        for i, path in enumerate(self.paths):
            image = _imread(path)
            if image is not None:
                for unreadable in self.paths[:i]:
                    self._skip(unreadable)
                return i, image
        # Nothing readable: the error names it all, no warning per file before it.
        what = str(self.paths[0]) if len(self.paths) == 1 else f"any of the {len(self.paths)} files in {self.name}"
        raise SourceError(f"cannot decode {what}: not an image OpenCV can read, or corrupt")

    def _skip(self, path: Path) -> None:
        self.skipped.append(path)
        log.warning("skipping %s: not an image OpenCV can read", path)

    def _frames(self) -> Iterator[Frame]:
        first, image = self._first
        names: set[str] = set()
        index = 0
        for i in range(first, len(self.paths)):
            path = self.paths[i]
            if i > first:
                image = _imread(path)
                if image is None:
                    self._skip(path)
                    continue
            name = path.stem if path.stem not in names else f"{path.stem}-{i}"
            names.add(name)
            yield Frame(image=image, index=index, name=name, timestamp=float(index))
            index += 1

    def describe(self) -> dict:
        return {**super().describe(), "paths": [str(p) for p in self.paths]}


def _imread(path: Path) -> np.ndarray | None:
    """``cv2.imread`` that also reads non-ASCII paths and never raises."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    if not data.size:
        return None
    try:
        return cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error:  # e.g. a header claiming more than CV_IO_MAX_IMAGE_PIXELS: raised, not None
        return None


def is_webcam_spec(spec: str) -> bool:
    """True for a webcam index such as ``"0"``."""
    return _WEBCAM_SPEC.fullmatch(spec) is not None


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def source_stem(spec: str) -> str:
    """A short name for the run folder: the file or folder stem, ``webcam0``, or the glob's folder."""
    if is_webcam_spec(spec):
        return f"webcam{int(spec)}"
    if any(c in spec for c in GLOB_CHARS):
        head = spec.split("*")[0].split("?")[0].split("[")[0]
        return Path(head).name or Path(head).parent.name or "images"
    path = Path(spec)
    return (path.stem if path.is_file() else path.name) or "source"


def open_source(spec: str | os.PathLike | int, *, max_frames: int | None = None) -> Source:
    """Open a source: a webcam index (``0``), a folder, a glob (``"photos/*.jpg"``), an image or a video."""
    text = os.fspath(spec) if not isinstance(spec, int) else str(spec)
    if is_webcam_spec(text) and not Path(text).exists():
        return WebcamSource(int(text), max_frames=max_frames)
    path = Path(text).expanduser()
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.is_file() and is_image_path(p))
        return ImageSource(images, name=str(path), max_frames=max_frames)
    if not path.exists() and any(c in text for c in GLOB_CHARS):
        matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(text)))
        images = [p for p in matches if p.is_file() and is_image_path(p)]
        if not images:
            raise SourceNotFoundError(f"no images match {text}")
        return ImageSource(images, name=text, max_frames=max_frames)
    if not path.exists():
        raise SourceNotFoundError(f"no such file: {path}")
    if not os.access(path, os.R_OK):
        raise SourceError(f"cannot read {path}: permission denied")
    if is_image_path(path):
        return ImageSource([path], name=str(path), max_frames=max_frames)
    return VideoSource(path, max_frames=max_frames)
