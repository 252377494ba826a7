"""Several data sets trained on as one: ``[{data: SPEC, weight: W}, ...]`` in a recipe.

Each person keeps its source (``PersonRecord.source``). A source's ``weight``
is how many times per epoch each of its people is seen on average: 1 is once,
3 is three times, 0.5 a random half of them (drawn afresh each epoch). An
epoch's length is therefore fixed, ``sum(round(weight * count))``, and a run's
schedule is known before it starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import DatasetError
from .base import PersonRecord, PoseDataset


@dataclass(frozen=True)
class Source:
    data: str
    weight: float = 1.0

    def __post_init__(self):
        if not isinstance(self.data, str) or not self.data:
            raise DatasetError(f"a data source needs a spec string; got {self.data!r}")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) \
                or not math.isfinite(self.weight) or self.weight <= 0:
            raise DatasetError(f"source {self.data}: weight must be a finite number > 0; got {self.weight!r}")


def parse_sources(value: Any) -> tuple[Source, ...]:
    """A recipe's ``train_data``: one spec, or a list of specs / ``{data, weight}`` mappings."""
    if isinstance(value, str):
        return (Source(value),)
    if not isinstance(value, (list, tuple)) or not value:
        raise DatasetError(f"data must be a spec or a non-empty list of sources; got {value!r}")
    sources = []
    for item in value:
        if isinstance(item, str):
            sources.append(Source(item))
        elif isinstance(item, dict) and set(item) <= {"data", "weight"} and "data" in item:
            sources.append(Source(item["data"], item.get("weight", 1.0)))
        else:
            raise DatasetError(f"a data source is a spec or {{data: SPEC, weight: W}}; got {item!r}")
    specs = [s.data for s in sources]
    if len(set(specs)) != len(specs):
        raise DatasetError(f"a data source is listed twice in {specs}; give it one weight instead")
    return tuple(sources)


def load_mixture(sources: Sequence[Source]) -> PoseDataset:
    """The people of every source, in order, each tagged with its spec; images load from their own source."""
    from . import load_dataset

    if len(sources) == 1 and sources[0].weight == 1.0:
        return load_dataset(sources[0].data)
    records: list[PersonRecord] = []
    loaders, parts = {}, []
    for source in sources:
        part = load_dataset(source.data)
        if not part.records:
            raise DatasetError(f"data source {source.data} holds no people")
        for record in part.records:
            record.source = source.data
        records += part.records
        loaders[source.data] = part.load_image
        parts.append((source.data, len(part.records), float(source.weight)))

    def load_image(record: PersonRecord) -> np.ndarray:
        return loaders[record.source](record)

    return PoseDataset(name=" + ".join(s.data for s in sources), records=records, load_image=load_image,
                       parts=tuple(parts))


def repeats(count: int, weight: float) -> tuple[int, int]:
    """``(whole passes, extra people)`` a source of ``count`` people at ``weight`` gives each epoch."""
    whole = int(math.floor(weight))
    return whole, int(round((weight - whole) * count))


def epoch_size(dataset: PoseDataset) -> int:
    """How many people one epoch over ``dataset`` visits (its length unless it is a weighted mixture)."""
    if not dataset.parts:
        return len(dataset)
    return sum(whole * count + extra for _, count, weight in dataset.parts
               for whole, extra in [repeats(count, weight)])
