"""Shared helpers for the inference tests: a real tiny ONNX model, the shipped clip, and a CLI runner.

Not a conftest (that file belongs to the whole suite): test modules import
what they need from here, e.g. ``from _infer_fixtures import tiny_onnx, run_cli``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
CLIP = DATA / "vtest-clip" / "vtest-clip.avi"
COCO_DIR = DATA / "coco-sample"


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    """``model.onnx`` (64x64, one epoch) with our metadata, exported once per session (no parity run)."""
    from dp_pose_zoo.export.onnx_export import export_onnx, model_metadata
    from dp_pose_zoo.training.checkpoint import load_model

    model, config = load_model(tiny_checkpoint)
    meta = model_metadata(config, (tiny_checkpoint / "README.md").read_text(), precision="fp32")
    return export_onnx(model, tmp_path_factory.mktemp("infer-onnx") / "model.onnx", metadata=meta)


@pytest.fixture(scope="session")
def tiny_export(tiny_checkpoint, tiny_onnx, tmp_path_factory) -> Path:
    """An export folder without weights (a release of ONNX alone): the tiny model's ``model.onnx`` and card."""
    folder = tmp_path_factory.mktemp("tiny-export") / "export"
    folder.mkdir()
    shutil.copyfile(tiny_onnx, folder / "model.onnx")
    shutil.copyfile(tiny_checkpoint / "README.md", folder / "README.md")
    return folder


def run_cli(argv: list[str]) -> int:
    """``dp-pose ARGV`` in-process; registers ``infer`` if cli.py does not (yet) wire it."""
    from dp_pose_zoo import cli
    from dp_pose_zoo.commands import infer

    original = cli.build_parser

    def build():
        parser = original()
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        if "infer" not in sub.choices:
            infer.add_parser(sub)
        return parser

    cli.build_parser = build
    try:
        return cli.main(argv)
    finally:
        cli.build_parser = original


def copy_clip(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CLIP, dest)
    return dest


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` pixels (its data is a few bytes): OpenCV refuses
    to decode more than CV_IO_MAX_IMAGE_PIXELS with an exception, not by returning None."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path
