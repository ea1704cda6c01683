"""Datasets, by name. `get_dataset("digits")` is the embedded one."""

from __future__ import annotations

from functools import cache

from scalebench.data.base import Dataset, SampleForm
from scalebench.registry import Registry

DATASETS: Registry = Registry("dataset", entry_point_group="scalebench.datasets")
DATASETS.register("digits", "scalebench.data.digits:Digits")


@cache
def get_dataset(name: str) -> Dataset:
    return DATASETS.get(name)()


__all__ = ["DATASETS", "Dataset", "SampleForm", "get_dataset"]
