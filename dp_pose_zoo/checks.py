"""The one pair of number checks that config.json, cards and the accountant's inputs share.

``bool`` is an ``int`` to Python but never a count or an epsilon here: ``True``
steps or an epsilon of ``False`` are refused, whoever reads them.
"""

from __future__ import annotations

import numbers


def is_int(value: object) -> bool:
    """An integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """An int or a float (possibly inf or nan), not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
