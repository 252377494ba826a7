"""Where results go: an annotated video, annotated images, ``keypoints.json`` and ``keypoints.csv``.

Every sink is a :class:`Sink`: it writes to a temporary name beside its final
one, :meth:`~Sink.finish` renames it into place and :meth:`~Sink.abort` removes
it, and a ``with`` block does the one or the other: a crash never leaves a file
that looks complete but is not. (The pipeline also stages the whole run
folder, so this holds twice over.) The JSON and CSV layouts are documented in
``docs/output-format.md``; change them only together with that file and
:data:`FORMAT_VERSION`.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Iterable

import cv2
import numpy as np

from ..errors import OutputError
from ..io import atomic_write_bytes
from ..runtime.metadata import json_safe  # the one spelling of non-finite numbers in JSON outputs
from ..skeleton import JOINT_NAMES, LIMBS

FORMAT = "dp-pose-zoo/keypoints"
FORMAT_VERSION = 1
VIDEO_FOURCC = "mp4v"


def _tmp(path: Path) -> Path:
    """A hidden sibling that keeps the extension (VideoWriter picks the container from it)."""
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


class Sink:
    """Base of every output: ``write`` as frames come, then :meth:`finish` (the output appears under its
    name) or :meth:`abort` (nothing is left). ``with sink:`` finishes on success and aborts on an error."""

    def finish(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement finish")

    def abort(self) -> None:
        """Remove what was written (idempotent; a no-op once finished)."""
        raise NotImplementedError(f"{type(self).__name__} must implement abort")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
            return
        try:
            self.finish()
        except BaseException:
            self.abort()
            raise


def person_record(person, *, digits: int = 2) -> dict:
    """One person as the JSON layout has it (see docs/output-format.md)."""
    kps = np.asarray(person.keypoints, dtype=np.float64)
    scores = np.asarray(person.scores, dtype=np.float64)
    box_score = getattr(person, "box_score", None)
    return {
        "track_id": getattr(person, "track_id", None),
        "box": [round(float(v), digits) for v in np.asarray(person.box)[:4]],
        "box_source": getattr(person, "box_source", "detector"),
        "box_score": None if box_score is None else round(float(box_score), 4),
        "score": round(float(scores.mean()), 4) if scores.size else 0.0,
        "keypoints": [[round(float(x), digits), round(float(y), digits), round(float(s), 4)]
                      for (x, y), s in zip(kps, scores)],
    }


def frame_record(frame, people: Iterable) -> dict:
    """One frame: index, name, timestamp, size and its people."""
    h, w = frame.image.shape[:2]
    return {"index": frame.index, "name": frame.name, "timestamp": round(float(frame.timestamp), 4),
            "width": w, "height": h, "people": [person_record(p) for p in people]}


class FileSink(Sink):
    """A file (text, or bytes with ``binary``) written under a temporary name, synced and renamed by
    :meth:`finish`, removed by :meth:`abort`."""

    def __init__(self, path: str | os.PathLike, *, binary: bool = False):
        self.path = Path(path)
        self._tmp = _tmp(self.path)
        try:
            self._f = open(self._tmp, "wb") if binary else open(self._tmp, "w", newline="", encoding="utf-8")
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from None
        self.closed = False

    def finish(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self._tmp, self.path)
        self.closed = True

    def abort(self) -> None:
        if not self.closed:
            self._f.close()
            self._tmp.unlink(missing_ok=True)
            self.closed = True


class JsonSink(FileSink):
    """``keypoints.json``, streamed frame by frame so a long run does not hold every frame in memory.

    Its closing ``summary`` (set it before :meth:`finish`) says what the run did.
    """

    def __init__(self, path: str | os.PathLike, *, header: dict):
        super().__init__(path)
        self.summary: dict = {}
        head = {"format": FORMAT, "version": FORMAT_VERSION, **json_safe(header),
                "joint_names": list(JOINT_NAMES), "skeleton": [list(limb) for limb in LIMBS]}
        lines = [f" {json.dumps(k)}: {json.dumps(v, allow_nan=False)}" for k, v in head.items()]
        self._f.write("{\n" + ",\n".join(lines) + ',\n "frames": [')
        self._first = True

    def write(self, record: dict) -> None:
        self._f.write(("\n  " if self._first else ",\n  ") + json.dumps(json_safe(record), allow_nan=False))
        self._first = False

    def finish(self) -> None:
        self._f.write("\n ],\n \"summary\": " + json.dumps(json_safe(self.summary), allow_nan=False) + "\n}\n")
        super().finish()


def csv_columns() -> list[str]:
    """The CSV header: one row per person per frame, joints spread over ``<joint>_x, _y, _score`` columns."""
    cols = ["frame", "name", "timestamp", "track_id", "box_x1", "box_y1", "box_x2", "box_y2", "box_score",
            "box_source", "score"]
    for joint in JOINT_NAMES:
        cols += [f"{joint}_x", f"{joint}_y", f"{joint}_score"]
    return cols


class CsvSink(FileSink):
    """``keypoints.csv``: the same numbers as the JSON, one row per person per frame."""

    def __init__(self, path: str | os.PathLike):
        super().__init__(path)
        self._writer = csv.writer(self._f)
        self._writer.writerow(csv_columns())

    def write(self, record: dict) -> None:
        for p in record["people"]:
            row = [record["index"], record["name"], record["timestamp"], p["track_id"], *p["box"],
                   "" if p["box_score"] is None else p["box_score"], p["box_source"], p["score"]]
            for x, y, s in p["keypoints"]:
                row += [x, y, s]
            self._writer.writerow(row)


class VideoSink(Sink):
    """An annotated video via ``cv2.VideoWriter`` (``mp4v`` in .mp4); frames of another size are resized.

    ``size`` ``(width, height)`` defaults to the first frame's: the file is opened when that frame comes.
    """

    def __init__(self, path: str | os.PathLike, *, fps: float, size: tuple[int, int] | None = None,
                 fourcc: str = VIDEO_FOURCC):
        self.path = Path(path)
        self.fps, self.fourcc = float(fps), fourcc
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self._tmp = _tmp(self.path)
        self._writer: cv2.VideoWriter | None = None
        self.frames = 0
        self.closed = False

    @property
    def paths(self) -> list[Path]:
        return [self.path]

    def _open(self, size: tuple[int, int]) -> cv2.VideoWriter:
        writer = cv2.VideoWriter(os.fspath(self._tmp), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, size)
        if not writer.isOpened():
            writer.release()
            self._tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write video {self.path} (codec {self.fourcc} at {self.fps:g} fps, "
                              f"{size[0]}x{size[1]})")
        return writer

    def write(self, image: np.ndarray, name: str | None = None) -> str | None:
        """Append ``image``; returns ``name`` (a frame of a video is known by its source's frame name)."""
        if self._writer is None:
            self.size = self.size or (image.shape[1], image.shape[0])
            self._writer = self._open(self.size)
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size)
        self._writer.write(image)
        self.frames += 1
        return name

    def finish(self) -> None:
        if self.frames == 0:
            raise OutputError(f"no frames were written to {self.path}")
        self._writer.release()
        os.replace(self._tmp, self.path)
        self.closed = True

    def abort(self) -> None:
        if not self.closed:
            if self._writer is not None:
                self._writer.release()
            self._tmp.unlink(missing_ok=True)
            self.closed = True


class ImageSink(Sink):
    """Annotated images, one file per frame name, in a folder (each written atomically)."""

    def __init__(self, folder: str | os.PathLike, *, ext: str = ".jpg"):
        self.folder = Path(folder)
        self.ext = ext
        self.paths: list[Path] = []

    def write(self, image: np.ndarray, name: str) -> str:
        """Write ``image`` as ``<name><ext>``; returns that file name."""
        ok, data = cv2.imencode(self.ext, image)
        if not ok:
            raise OutputError(f"cannot encode {name}{self.ext}")
        path = self.folder / f"{name}{self.ext}"
        try:
            atomic_write_bytes(path, data.tobytes())
        except OSError as e:
            raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
        self.paths.append(path)
        return path.name

    def finish(self) -> None:
        """Nothing to finish: each image was complete when written."""

    def abort(self) -> None:
        for path in self.paths:
            path.unlink(missing_ok=True)
