"""The Ray executor: long-lived worker actors measure points, the driver stays the single writer.

`scalebench run SPEC --executor ray [--workers N] [--address auto|HOST:PORT]`. Without an
address a private local Ray with N workers starts (and stops with the sweep); with one, the
sweep joins that cluster and leaves it running. Each worker is an actor that keeps its
generators loaded, sets torch's threads from the point (the spec's `threads`), and runs the
same `sweep/measure.py` code as the local executor, so records, point ids and resume are the
same whichever executor ran them: a sweep started locally resumes on Ray and back.

Scheduling: points go out longest first (seconds an earlier record of the same budget took,
else samples × S × K), a finished worker gets the next point before the driver writes the
record it returned, so no worker waits on the disk. Interleaved timing: after the quality
passes every live worker times its share of the pending points in rounds
(`measure.time_rounds`); "every point of the same process" is then a worker's share.

Faults: a worker that dies (killed, out of memory, node lost) is replaced; its point is retried
once on another worker, then recorded as failed with the reason. Timing rounds lost with a
worker are retried once; if they fail again the points stay pending, and a rerun times them.
Ctrl-C stops scheduling: finished records are already written, a local Ray is shut down.
Ray is imported only here, only when asked for (`pip install 'scalebench[ray]'`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from scalebench.errors import UsageError
from scalebench.sweep.plan import Point
from scalebench.sweep.spec import ExecutorSettings

log = logging.getLogger(__name__)

RAY_MISSING = ("--executor ray needs Ray, which is not installed here; pip install 'scalebench[ray]' "
               "(or run with --executor local)")


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(RAY_MISSING) from None
    return ray


class Worker:
    """One actor: measures points and times rounds with the in-process measuring code."""

    def pid(self) -> int:
        return os.getpid()

    def measure(self, point: Point) -> dict[str, Any]:
        from scalebench.sweep.measure import execute_point

        return execute_point(point)

    def time_rounds(self, pairs: list[tuple[Point, dict[str, Any]]], order_seed: int) -> list[dict[str, Any]]:
        from scalebench.sweep.measure import time_rounds

        return time_rounds(pairs, order_seed)


def estimated_seconds(history: dict[str, Any]) -> Callable[[Point], float]:
    """Longest-first key: wall seconds of an earlier record with the same budget (any seed), else a
    proxy proportional to samples × S × K (every point of one spec then sorts the same way)."""
    seen: dict[tuple, float] = {}
    for r in history.values():
        if r.get("wall_s"):
            key = (r.get("generator"), r.get("sampler"), r.get("S"), r.get("K"), r.get("n"))
            seen[key] = max(seen.get(key, 0.0), float(r["wall_s"]))

    def cost(p: Point) -> float:
        known = seen.get((p.name, p.sampler, p.S, p.K, p.n))
        return known if known is not None else 1e-6 * p.n * p.S * p.K
    return cost


class RayExecutor:
    """Runs points on Ray worker actors; yields pending and completed records as they arrive."""

    times_rounds = True  # the runner hands it the pending points too and does no rounds itself

    def __init__(self, settings: ExecutorSettings | None = None, history: dict[str, Any] | None = None) -> None:
        self.settings = settings or ExecutorSettings(kind="ray")
        if self.settings.workers < 1:
            raise UsageError(f"--workers {self.settings.workers}: needs at least 1 worker")
        self.history = history or {}
        self.actors: list[Any] = []
        self.pids: dict[Any, int] = {}  # actor → its process id, read once while it was idle
        self.inflight: dict[Any, tuple[Any, Point]] = {}
        self._ray: Any = None
        self._started_ray = False
        self._actor_cls: Any = None

    # ------------------------------------------------------------------ Ray life cycle
    def _start(self, points: list[Point]) -> None:
        ray = self._ray = import_ray()
        s = self.settings
        threads = max((p.threads for p in points), default=1)
        if not ray.is_initialized():
            env = {"env_vars": {"PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).resolve().parents[2]), *filter(None, [os.environ.get("PYTHONPATH")])])}}
            if s.address is None:
                ray.init(address="local", num_cpus=s.workers * threads, include_dashboard=False,
                         log_to_driver=False, configure_logging=False, runtime_env=env)
            else:
                ray.init(address=s.address, log_to_driver=False, configure_logging=False, runtime_env=env)
            self._started_ray = True
        cuda = any(p.device.startswith("cuda") for p in points)
        self._actor_cls = ray.remote(num_cpus=threads, num_gpus=s.gpus_per_worker if cuda else 0,
                                     max_restarts=0)(Worker)
        self.actors = [self._spawn() for _ in range(s.workers)]

    def _spawn(self) -> Any:
        actor = self._actor_cls.remote()
        self.pids[actor] = self._ray.get(actor.pid.remote())
        return actor

    def _stop(self) -> None:
        if self._ray is not None and self._started_ray:
            self._ray.shutdown()
        self._started_ray = False
        self.actors, self.pids, self.inflight = [], {}, {}

    def busy_pids(self) -> list[int]:
        """Process ids of the workers measuring a point right now (tests kill one to check the retry)."""
        return [self.pids[a] for a, _ in self.inflight.values()]

    # ------------------------------------------------------------------ the executor interface
    def run(self, points: Iterable[Point], on_start: Callable[[Point], None] | None = None,
            pending: Iterable[tuple[Point, dict[str, Any]]] = (), order_seed: int = 0
            ) -> Iterator[dict[str, Any]]:
        points, pending = list(points), list(pending)
        if not points and not pending:
            return
        self._start(points or [p for p, _ in pending])
        try:
            yield from self._quality(points, on_start, pending)
            yield from self._rounds(pending, order_seed)
        finally:
            self._stop()

    def _quality(self, points: list[Point], on_start: Callable[[Point], None] | None,
                 pending: list[tuple[Point, dict[str, Any]]]) -> Iterator[dict[str, Any]]:
        ray = self._ray
        queue = sorted(points, key=estimated_seconds(self.history), reverse=True)
        tries: dict[str, int] = {}
        idle = list(self.actors)
        inflight = self.inflight

        def fill() -> None:
            while idle and queue:
                actor, p = idle.pop(), queue.pop(0)
                if on_start:
                    on_start(p)
                inflight[actor.measure.remote(p)] = (actor, p)

        fill()
        while inflight:
            ref = _wait_one(ray, list(inflight))
            actor, p = inflight.pop(ref)
            try:
                rec = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                idle.append(self._replace(actor))
                tries[p.point_id] = tries.get(p.point_id, 0) + 1
                if tries[p.point_id] <= self.settings.retries:
                    log.warning("%s: its worker died (%s); retrying on another worker", p.label(), _short(e))
                    queue.insert(0, p)
                    fill()
                    continue
                fill()
                yield _died(p, tries[p.point_id], e)
                continue
            idle.append(actor)
            fill()  # the next point starts before this record is written
            if rec.get("status") == "ok" and rec.get("timing", {}).get("mode") == "pending":
                pending.append((p, rec))
            yield rec

    def _rounds(self, pending: list[tuple[Point, dict[str, Any]]], order_seed: int) -> Iterator[dict[str, Any]]:
        """Each live worker times its share (balanced by estimated cost) in interleaved rounds."""
        ray = self._ray
        left, attempt = list(pending), 0
        while left and attempt <= self.settings.retries:
            shares = _balance(left, len(self.actors), estimated_seconds(self.history))
            refs = {a.time_rounds.remote(share, order_seed): (a, share)
                    for a, share in zip(self.actors, shares, strict=False) if share}
            left = []
            while refs:
                ref = _wait_one(ray, list(refs))
                actor, share = refs.pop(ref)
                try:
                    yield from ray.get(ref)
                except ray.exceptions.RayActorError as e:
                    log.warning("a worker died while timing %d points (%s)", len(share), _short(e))
                    self._replace(actor)
                    left += share
            attempt += 1
        if left:
            log.warning("%d points keep their pending timing after worker deaths; run the sweep again to "
                        "time them", len(left))

    def _replace(self, dead: Any) -> Any:
        new = self._spawn()
        self.actors[self.actors.index(dead)] = new
        self.pids.pop(dead, None)
        return new


def _wait_one(ray: Any, refs: list[Any]) -> Any:
    """The first finished of `refs`. Short waits in a loop: a blocking ray.wait holds off Python's
    signal handling, so Ctrl-C would wait for the slowest point in flight."""
    while True:
        ready, _ = ray.wait(refs, num_returns=1, timeout=0.2)
        if ready:
            return ready[0]


def _balance(pairs: list[tuple[Point, dict[str, Any]]], n: int, cost: Callable[[Point], float]
             ) -> list[list[tuple[Point, dict[str, Any]]]]:
    """Greedy longest-first split of the pending points into n shares of similar cost."""
    shares: list[list[tuple[Point, dict[str, Any]]]] = [[] for _ in range(n)]
    load = [0.0] * n
    for pair in sorted(pairs, key=lambda pr: cost(pr[0]), reverse=True):
        i = load.index(min(load))
        shares[i].append(pair)
        load[i] += cost(pair[0])
    return shares


def _short(e: BaseException) -> str:
    return str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__


def _died(p: Point, tries: int, e: BaseException) -> dict[str, Any]:
    from scalebench.provenance import now
    from scalebench.sweep.measure import new_record

    rec = new_record(p)
    rec.update(error=f"WorkerDied: the worker measuring this point died {tries} times "
                     f"(last: {_short(e)}); run the sweep again to retry it", ended_at=now())
    return rec
