"""Writes that are complete or absent: nothing a crash leaves half-written."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, replace: bool = False):
    """Yield a staging folder that becomes ``path`` only when the block succeeds.

    With ``replace`` an existing ``path`` is swapped out in two renames; a crash
    between them leaves ``<path>.old``, which :func:`recover_dir` restores.
    """
    final = Path(path)
    staging = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = final.with_name(f"{final.name}.old")
    if final.exists():
        if not replace:
            shutil.rmtree(staging, ignore_errors=True)
            raise FileExistsError(f"{final} already exists")
        if old.exists():
            shutil.rmtree(old)
        os.rename(final, old)
    os.rename(staging, final)
    if old.exists():
        shutil.rmtree(old)


def recover_dir(path: str | os.PathLike) -> Path:
    """Return ``path``, first restoring it from ``<path>.old`` if a swap was cut short."""
    final = Path(path)
    old = final.with_name(f"{final.name}.old")
    if not final.exists() and old.exists():
        os.rename(old, final)
    return final


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary sibling and rename it over ``path``."""
    final = Path(path)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (weights files are tens of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
