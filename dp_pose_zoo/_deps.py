"""Optional dependencies, probed once, with a pip hint when missing."""

from __future__ import annotations

import importlib.util

from .errors import MissingExtraError


def require(package: str, extra: str) -> None:
    """Raise :class:`MissingExtraError` naming the extra unless ``package`` is importable."""
    if importlib.util.find_spec(package) is None:
        raise MissingExtraError(package, extra)
