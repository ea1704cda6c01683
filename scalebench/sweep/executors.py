"""Executors run grid points and hand back records; the driver alone writes them.

The interface is one method, `run(points, on_start) -> iterator of records` (in completion
order), so a distributed executor (Ray) plugs in without touching the runner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from scalebench.record import Record
from scalebench.sweep.plan import Point


class Executor(Protocol):
    def run(self, points: Iterable[Point], on_start: Callable[[Point], None] | None = None
            ) -> Iterator[Record]: ...


class LocalExecutor:
    """In-process, one point at a time (generators stay loaded between points)."""

    def run(self, points: Iterable[Point], on_start: Callable[[Point], None] | None = None
            ) -> Iterator[Record]:
        from scalebench.sweep.measure import execute_point

        for p in points:
            if on_start:
                on_start(p)
            yield execute_point(p)
