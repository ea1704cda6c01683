"""The order `scalebench train --all` remakes the zoo in, derived from the index, never kept by hand.

A checkpoint is trained after the checkpoints its index entry names as `parents` (a distilled
student after its teacher, a fine-tune after the model it starts from), and a replicate
`<base>-rN` after `<base>`. Checkpoints that do not depend on each other keep the order of the
trainer names given (then replicate number), so the order is stable from one run to the next.
Trainers whose checkpoint is not in the index yet are trained too (nothing is known of their
parents, so they wait for nothing).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scalebench.errors import UsageError
from scalebench.zoo import REPLICATE


@dataclass(frozen=True)
class TrainJob:
    """One `scalebench train` call: the trainer's name and the replicate number (0: the checkpoint itself)."""

    name: str
    replicate: int = 0

    @property
    def checkpoint(self) -> str:
        return f"{self.name}-r{self.replicate}" if self.replicate else self.name

    def command(self) -> str:
        """The command line that runs this job alone."""
        return f"scalebench train {self.name}" + (f" --replicate {self.replicate}" if self.replicate else "")


def _job_of(checkpoint: str, entry: Mapping[str, Any], trainers: Mapping[str, int]) -> TrainJob:
    """The job that makes `checkpoint`; a checkpoint no trainer makes is an error naming it."""
    base = entry.get("replicate_of")
    if base:
        match = REPLICATE.fullmatch(checkpoint)
        if match is None or match["base"] != base:
            raise UsageError(f"zoo index entry {checkpoint!r} says replicate_of {base!r} but is not named "
                             f"{base}-rN; fix scalebench/zoo/index.json")
        job = TrainJob(base, int(match["n"]))
    else:
        job = TrainJob(checkpoint)
    if job.name not in trainers:
        raise UsageError(f"zoo checkpoint {checkpoint!r} has no trainer (known: {', '.join(trainers)}); "
                         "register one or remove it from scalebench/zoo/index.json")
    return job


def training_order(index: Mapping[str, Mapping[str, Any]], trainers: Iterable[str]) -> list[TrainJob]:
    """Every trainer's checkpoint and every replicate in `index`, parents (and bases) first.

    `index` is `zoo.read_index()`: checkpoint → entry with `parents` and, for a replicate,
    `replicate_of`. A parent that is neither a trainer nor in the index, or a cycle of
    parents, is an error naming the checkpoints involved.
    """
    rank = {name: i for i, name in enumerate(trainers)}
    jobs: dict[str, TrainJob] = {name: TrainJob(name) for name in rank}
    for checkpoint, entry in index.items():
        jobs[checkpoint] = _job_of(checkpoint, entry, rank)
    waits_for: dict[str, set[str]] = {}
    for checkpoint, job in jobs.items():
        parents = set(index.get(checkpoint, {}).get("parents") or ())
        if job.replicate:
            parents.add(job.name)
        unknown = sorted(parents - jobs.keys())
        if unknown:
            raise UsageError(f"zoo checkpoint {checkpoint!r} names parents {unknown} that no trainer makes; "
                             "fix its parents in scalebench/zoo/index.json")
        waits_for[checkpoint] = parents
    children: dict[str, list[str]] = {checkpoint: [] for checkpoint in jobs}
    for checkpoint, parents in waits_for.items():
        for parent in parents:
            children[parent].append(checkpoint)

    def key(checkpoint: str) -> tuple[int, int, str]:
        return rank[jobs[checkpoint].name], jobs[checkpoint].replicate, checkpoint

    pending = {checkpoint: len(parents) for checkpoint, parents in waits_for.items()}
    ready = [key(checkpoint) for checkpoint, count in pending.items() if count == 0]
    heapq.heapify(ready)
    order: list[TrainJob] = []
    while ready:
        checkpoint = heapq.heappop(ready)[2]
        order.append(jobs[checkpoint])
        for child in children[checkpoint]:
            pending[child] -= 1
            if pending[child] == 0:
                heapq.heappush(ready, key(child))
    if len(order) < len(jobs):
        stuck = sorted(set(jobs) - {job.checkpoint for job in order})
        raise UsageError(f"zoo checkpoints {stuck} are their own ancestors (a cycle of parents); "
                         "fix their parents in scalebench/zoo/index.json")
    return order
