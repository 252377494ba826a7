"""Data sets by spec: ``synthpose:<domain>-<split>[:N]``, ``mpii:PATH``, ``coco:PATH``, ``lsp:DIR``."""

from __future__ import annotations

from ..errors import DatasetError
from .base import PersonRecord, PoseDataset

SPEC_HELP = "synthpose:<public|private>-<train|val|test|holdout>[:N], mpii:PATH, coco:PATH or lsp:DIR"


def load_dataset(spec: str) -> PoseDataset:
    """Open a data set from its spec (see ``SPEC_HELP``)."""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise DatasetError(f"bad data spec {spec!r}; expected {SPEC_HELP}")
    if kind == "synthpose":
        from .synthpose import load_split

        split, _, count = rest.partition(":")
        if count and not count.isdigit():
            raise DatasetError(f"bad SynthPose size {count!r} in {spec!r}; expected a positive integer")
        return load_split(split, int(count) if count else None)
    if kind == "mpii":
        from .mpii import load_mpii

        return load_mpii(rest)
    if kind == "coco":
        from .coco import load_coco

        return load_coco(rest)
    if kind == "lsp":
        from .lsp import load_lsp

        return load_lsp(rest)
    raise DatasetError(f"unknown data set kind {kind!r} in {spec!r}; expected {SPEC_HELP}")


__all__ = ["PersonRecord", "PoseDataset", "load_dataset", "SPEC_HELP"]
