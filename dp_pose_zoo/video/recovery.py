"""Recoverable anonymization: a sealed sidecar with the original pixels of everything an output changed.

``dp-pose infer --anonymize MODE --recoverable KEYFILE`` compares each source
frame with the frame it writes (anonymized *and* drawn on) and seals the
original pixels of every changed box into ``<output>.recovery`` with
AES-256-GCM (``cryptography``'s ``AESGCM``, a fresh random 12-byte nonce per
record). ``dp-pose recover`` opens them with the key and puts them back.

Sidecar layout (docs/output-format.md has it in full)::

    b"DPPZREC1" | u32 header length | header (JSON, in the clear) | record* | END record
    record = u32 length | nonce (12) | ciphertext + tag (16)

Records are FRAME (sealed JSON: ordinal, name, size, changed boxes, a check of
the written frame), one REGION per box (sealed PNG of the box's original
pixels), and END (sealed frame and record counts). Every record's associated
data binds the SHA-256 of the header (which holds a random ``output_id``),
the record's kind and sequence number, the output frame's ordinal and, for a
REGION, its box: nothing can be swapped, reordered, replayed from another run
or cut off without the key's owner noticing. Only the header, the number of
records and their lengths are readable without the key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import OutputError, RecoveryError
from .sinks import FileSink

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12
MAGIC = b"DPPZREC1"
SIDECAR_SUFFIX = ".recovery"
IMAGES_OUTPUT = "images"  # a run's images share one sidecar: <run>/images.recovery
FORMAT = "dp-pose-zoo/recovery"
FORMAT_VERSION = 1
CELL = 16  # changed pixels are gathered into boxes on a grid of 16 x 16 px cells
THUMB = 32  # lossy outputs: a 32 x 32 grey thumbnail of each written frame checks its place
# The most a lossy codec may move one thumbnail cell (grey levels). mp4v moves them by up to 4 on the shipped
# clip; the neighbouring frame of a slow scene differs by 30 or more somewhere (where people move).
THUMB_TOLERANCE = 20
_LENGTH = struct.Struct(">I")
_MAX_RECORD = 1 << 30


# ----------------------------------------------------------------------------- keys
def key_id(key: bytes) -> str:
    """A short public name of a key (first 12 hex digits of its SHA-256): says which key, reveals nothing."""
    return hashlib.sha256(b"dp-pose-zoo key id\x00" + key).hexdigest()[:12]


def generate_key(path: str | os.PathLike) -> str:
    """Write a new random key to ``path`` (mode 0600, never over an existing file or link); return its id."""
    path = Path(path)
    key = secrets.token_bytes(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise RecoveryError(f"{path} already exists; a key is never overwritten (choose another name)") from None
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        os.fchmod(fd, 0o600)  # the mode os.open asked for, whatever the umask
        os.write(fd, key)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    return key_id(key)


def load_key(path: str | os.PathLike) -> bytes:
    """The 32-byte key in ``path``, or a :class:`RecoveryError` saying why not."""
    path = Path(path)
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        raise RecoveryError(f"key file {path} not found (make one with: dp-pose keygen {path})") from None
    except OSError as e:
        raise RecoveryError(f"cannot read key file {path}: {e.strerror or e}") from None
    if len(key) != KEY_BYTES:
        raise RecoveryError(f"{path} is not a dp-pose key ({len(key)} bytes; a key has {KEY_BYTES})")
    return key


# ----------------------------------------------------------------------------- what a frame changed
def changed_boxes(original: np.ndarray, written: np.ndarray, *, cell: int = CELL) -> list[tuple[int, int, int, int]]:
    """Boxes ``(x1, y1, x2, y2)`` (end exclusive) that together cover every pixel where the frames differ.

    Changed pixels are gathered on a grid of ``cell`` px and each 8-connected
    group of changed cells gives its bounding box: a few boxes per person,
    label and skeleton rather than thousands of single pixels.
    """
    if original.shape != written.shape:
        raise ValueError(f"frames differ in shape: {original.shape} and {written.shape}")
    diff = np.any(original != written, axis=2) if original.ndim == 3 else original != written
    h, w = diff.shape
    gh, gw = -(-h // cell), -(-w // cell)
    padded = np.zeros((gh * cell, gw * cell), bool)
    padded[:h, :w] = diff
    cells = padded.reshape(gh, cell, gw, cell).any(axis=(1, 3)).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(cells, connectivity=8)
    boxes = []
    for x, y, bw, bh, _area in stats[1:n]:
        boxes.append((int(x * cell), int(y * cell), int(min(w, (x + bw) * cell)), int(min(h, (y + bh) * cell))))
    return boxes


def _thumbnail(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA)


def _frame_digest(image: np.ndarray) -> str:
    return hashlib.sha256(repr(image.shape).encode() + image.tobytes()).hexdigest()


# ----------------------------------------------------------------------------- sealing
def _aad(header_hash: bytes, kind: bytes, seq: int, ordinal: int, box: tuple[int, ...] = ()) -> bytes:
    return header_hash + kind + struct.pack(">QQ", seq, ordinal) + b"".join(struct.pack(">I", v) for v in box)


def _header_bytes(header: dict) -> bytes:
    body = json.dumps(header, sort_keys=True).encode()
    return MAGIC + _LENGTH.pack(len(body)) + body


def sidecar_path(output: str | os.PathLike) -> Path:
    """``<output>.recovery``: the sidecar of a video file or of a run folder's images."""
    output = Path(output)
    return output.with_name(output.name + SIDECAR_SUFFIX)


class SidecarWriter(FileSink):
    """Seals the original pixels of each written frame's changes, frame by frame, into a sidecar.

    A binary :class:`~dp_pose_zoo.video.sinks.FileSink`: :meth:`finish` seals
    the END record and renames it into place, :meth:`abort` removes it.
    """

    def __init__(self, path: str | os.PathLike, key: bytes, *, output: str, lossless: bool):
        super().__init__(path, binary=True)
        self.output_id = secrets.token_hex(16)
        self.lossless = bool(lossless)
        header = {"format": FORMAT, "version": FORMAT_VERSION, "cipher": "AES-256-GCM", "output": output,
                  "output_id": self.output_id, "lossless": self.lossless, "key_id": key_id(key)}
        head = _header_bytes(header)
        self._hash = hashlib.sha256(head).digest()
        self._aead = AESGCM(key)
        self._seq = self.frames = 0
        self._f.write(head)

    def describe(self) -> dict:
        """The ``recovery`` block of keypoints.json."""
        return {"sidecar": self.path.name, "output_id": self.output_id, "cipher": "AES-256-GCM",
                "lossless": self.lossless}

    def _seal(self, plaintext: bytes, aad: bytes) -> None:
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, plaintext, aad)
        self._f.write(_LENGTH.pack(len(sealed)) + sealed)
        self._seq += 1

    def write_frame(self, original: np.ndarray, written: np.ndarray, *, name: str) -> list[tuple[int, ...]]:
        """Seal what ``written`` changed of ``original`` (same size); return the boxes sealed."""
        boxes = changed_boxes(original, written)
        h, w = written.shape[:2]
        info = {"ordinal": self.frames, "name": name, "size": [w, h], "boxes": [list(b) for b in boxes]}
        if self.lossless:
            info["digest"] = _frame_digest(written)
        else:
            info["thumbnail"] = base64.b64encode(_thumbnail(written).tobytes()).decode()
        self._seal(json.dumps(info).encode(), _aad(self._hash, b"FRAME", self._seq, self.frames))
        for box in boxes:
            x1, y1, x2, y2 = box
            ok, png = cv2.imencode(".png", original[y1:y2, x1:x2])
            if not ok:
                raise OutputError(f"cannot encode a region of {name} for {self.path}")
            self._seal(png.tobytes(), _aad(self._hash, b"REGION", self._seq, self.frames, box))
        self.frames += 1
        return boxes

    def finish(self) -> None:
        self._seal(json.dumps({"frames": self.frames, "records": self._seq}).encode(),
                   _aad(self._hash, b"END", self._seq, self.frames))
        super().finish()


# ----------------------------------------------------------------------------- opening
@dataclass(frozen=True)
class SealedFrame:
    """One frame's opened records: where it belongs, how to check it, and its original regions."""

    ordinal: int
    name: str
    size: tuple[int, int]  # (width, height)
    regions: list[tuple[tuple[int, int, int, int], np.ndarray]]
    digest: str | None
    thumbnail: np.ndarray | None

    def restore(self, written: np.ndarray) -> np.ndarray:
        """``written`` (as decoded from the output) with every sealed region put back; checks it first."""
        if (written.shape[1], written.shape[0]) != self.size:
            raise RecoveryError(f"frame {self.ordinal} ({self.name}) of the output is not the frame the sidecar "
                                f"sealed ({written.shape[1]}x{written.shape[0]}, sealed {self.size[0]}x{self.size[1]})")
        if self.digest is not None:
            if _frame_digest(written) != self.digest:
                raise RecoveryError(f"frame {self.ordinal} ({self.name}) of the output is not the frame the sidecar "
                                    "sealed (edited, reordered, or another run's output)")
        elif np.abs(_thumbnail(written).astype(np.int16) - self.thumbnail).max() > THUMB_TOLERANCE:
            raise RecoveryError(f"frame {self.ordinal} ({self.name}) of the output does not look like the frame the "
                                "sidecar sealed (reordered, or another run's output)")
        out = written.copy()
        for (x1, y1, x2, y2), pixels in self.regions:
            out[y1:y2, x1:x2] = pixels
        return out


class SidecarReader:
    """Opens a sidecar with its key; iterate for :class:`SealedFrame` s. Any fault is a :class:`RecoveryError`."""

    def __init__(self, path: str | os.PathLike, key: bytes):
        self.path = Path(path)
        try:
            self._data = self.path.read_bytes()
        except FileNotFoundError:
            raise RecoveryError(f"no sidecar {self.path}: this output was not made with --recoverable") from None
        except OSError as e:
            raise RecoveryError(f"cannot read {self.path}: {e.strerror or e}") from None
        if self._data[:len(MAGIC)] != MAGIC or len(self._data) < len(MAGIC) + _LENGTH.size:
            raise RecoveryError(f"{self.path} is not a dp-pose recovery sidecar")
        (n,) = _LENGTH.unpack_from(self._data, len(MAGIC))
        end = len(MAGIC) + _LENGTH.size + n
        try:
            self.header = json.loads(self._data[len(MAGIC) + _LENGTH.size:end])
            if not isinstance(self.header, dict) or self.header.get("format") != FORMAT:
                raise ValueError
        except ValueError:
            raise RecoveryError(f"{self.path} has a damaged header") from None
        if self.header.get("version") != FORMAT_VERSION:
            raise RecoveryError(f"{self.path} is recovery format version {self.header.get('version')}; "
                                f"this dp-pose reads version {FORMAT_VERSION}")
        if self.header.get("key_id") != key_id(key):
            raise RecoveryError(f"wrong key: {self.path} was sealed with key {self.header.get('key_id')}, "
                                f"this key is {key_id(key)}")
        self._hash = hashlib.sha256(self._data[:end]).digest()
        self._aead = AESGCM(key)
        self._pos = end
        self._seq = 0
        self.output_id = self.header.get("output_id")
        self.lossless = bool(self.header.get("lossless"))

    def _next(self, kind: bytes, ordinal: int, box: tuple[int, ...] = ()) -> bytes:
        if self._pos + _LENGTH.size > len(self._data):
            raise RecoveryError(f"{self.path} is truncated (it ends before its last record)")
        (n,) = _LENGTH.unpack_from(self._data, self._pos)
        start = self._pos + _LENGTH.size
        if n < NONCE_BYTES + 16 or n > _MAX_RECORD or start + n > len(self._data):
            raise RecoveryError(f"{self.path} is truncated or damaged at record {self._seq}")
        sealed = self._data[start:start + n]
        try:
            plain = self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:],
                                       _aad(self._hash, kind, self._seq, ordinal, box))
        except InvalidTag:
            raise RecoveryError(f"{self.path}: record {self._seq} fails authentication (the sidecar was edited, "
                                "truncated or reordered)") from None
        self._pos, self._seq = start + n, self._seq + 1
        return plain

    def next_frame(self, ordinal: int) -> SealedFrame:
        """The sealed frame ``ordinal`` (0, 1, 2 ... in turn)."""
        if self._at_end(ordinal):
            raise RecoveryError(f"the output has more frames than {self.path} sealed ({ordinal})")
        info = json.loads(self._next(b"FRAME", ordinal))
        regions = []
        for box in info["boxes"]:
            png = self._next(b"REGION", ordinal, tuple(box))
            regions.append((tuple(box), cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)))
        thumb = info.get("thumbnail")
        if thumb is not None:
            thumb = np.frombuffer(base64.b64decode(thumb), np.uint8).reshape(THUMB, THUMB).astype(np.int16)
        return SealedFrame(ordinal, info["name"], tuple(info["size"]), regions, info.get("digest"), thumb)

    def at_end(self, ordinal: int) -> bool:
        """True when the frames sealed are ``0 .. ordinal-1`` and the sidecar ends there (checked)."""
        return self._at_end(ordinal)

    def finish(self, count: int) -> None:
        """Check that the sidecar sealed exactly ``count`` frames and ends there."""
        if not self._at_end(count):
            raise RecoveryError(f"{self.path} sealed more frames than the output has ({count}): frames are missing")

    def _at_end(self, ordinal: int) -> bool:
        """True (having checked the END record and that nothing follows it) when the next record is END."""
        saved = (self._pos, self._seq)
        try:
            end = json.loads(self._next(b"END", ordinal))
        except RecoveryError:
            self._pos, self._seq = saved
            if self._pos + _LENGTH.size > len(self._data):
                raise RecoveryError(f"{self.path} is truncated (its END record is missing)") from None
            return False
        if end != {"frames": ordinal, "records": saved[1]} or self._pos != len(self._data):
            raise RecoveryError(f"{self.path} is damaged after its END record")
        return True
