"""The Ray executor: long-lived worker actors measure points, the driver stays the single writer.

`scalebench run SPEC --executor ray [--workers N] [--address auto|HOST:PORT]`. Without an
address a private local Ray with N workers starts (and stops with the sweep); with one, the
sweep joins that cluster and leaves it running. Each worker is an actor that keeps its
generators loaded, sets torch's threads from the point (the spec's `threads`), and runs the
same `sweep/measure.py` code as the local executor, so records, point ids and resume are the
same whichever executor ran them: a sweep started locally resumes on Ray and back.

Scheduling: points go out longest first (seconds an earlier record of the same budget took,
else samples × S × K), with affinity: a free worker takes the longest queued point of a
generator it has loaded already (or, if it has none, of one no other worker has loaded) when
that point is at least half as long as the longest queued one, so a generator is loaded on
few workers and its per-process memos (test NLL per budget) are reused, while a long point
still starts early. A finished worker gets its next point before the driver writes the record
it returned, so no worker waits on the disk. Interleaved timing: after the quality passes every
live worker times its share of the pending points in rounds (`measure.time_rounds`), a point
going to a worker that has its generator loaded where the balance allows; "every point of the
same process" is then a worker's share.

Faults: a worker that dies (killed, out of memory, node lost) is replaced; its point is retried
once on another worker, then recorded as failed with the reason. Timing rounds lost with a
worker are retried once; if they fail again the points stay pending, and a rerun times them.

Ctrl-C, in any phase (starting Ray, quality passes, timing rounds, writing): while the executor
runs, SIGINT sets a flag and raises KeyboardInterrupt; every wait on Ray is a 0.2 s slice that
checks the flag, so an interrupt swallowed anywhere (a finaliser, a library's except clause)
still stops the sweep. Stopping kills the workers at once (their points in flight are lost;
finished records are already written), shuts a private Ray down and kills any of its worker
processes still alive, ignoring further Ctrl-Cs until that is done. Workers ignore SIGINT (a
terminal's Ctrl-C reaches the whole process group): only the driver decides.
Ray is imported only here, only when asked for (`pip install 'scalebench[ray]'`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from scalebench.errors import UsageError
from scalebench.record import Record
from scalebench.sweep.plan import Point
from scalebench.sweep.spec import ExecutorSettings

log = logging.getLogger(__name__)

RAY_MISSING = ("--executor ray needs Ray, which is not installed here; pip install 'scalebench[ray]' "
               "(or run with --executor local)")
AFFINITY = 0.5
"""A worker prefers a point of a generator it has loaded when that point is at least this fraction
of the longest queued point's estimated cost."""
SLICE_S = 0.2  # every wait on Ray is this long at most, then the interrupt flag is checked
REDELIVER_S = 0.25  # a Ctrl-C swallowed inside ray.init is sent again this often until init is left


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(RAY_MISSING) from None
    return ray


def loaded_key(p: Point) -> tuple[str, str, bool, str, str]:
    """What a worker process loads once and reuses (`measure.get_loaded`'s cache key)."""
    return p.generator, p.device, p.compile, p.args, p.replicate


class Worker:
    """One actor: measures points and times rounds with the in-process measuring code."""

    def __init__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops the sweep, not a stray Ctrl-C

    def ready(self) -> tuple[int, str]:
        """Import the measuring code (torch) now, in parallel with the other workers; (pid, node id)."""
        import ray

        import scalebench.sweep.measure  # noqa: F401

        return os.getpid(), ray.get_runtime_context().get_node_id()

    def pid(self) -> int:
        return os.getpid()

    def measure(self, point: Point) -> Record:
        from scalebench.sweep.measure import execute_point

        return execute_point(point)

    def time_rounds(self, pairs: list[tuple[Point, Record]], order_seed: int) -> list[Record]:
        from scalebench.sweep.measure import time_rounds

        return time_rounds(pairs, order_seed)


def estimated_seconds(history: dict[str, Record]) -> Callable[[Point], float]:
    """Longest-first key: wall seconds of an earlier record with the same budget (any seed), else a
    proxy proportional to samples × S × K (every point of one spec then sorts the same way)."""
    seen: dict[tuple, float] = {}
    for r in history.values():
        if r.wall_s:
            key = (r.generator, r.sampler, r.S, r.K, r.n)
            seen[key] = max(seen.get(key, 0.0), float(r.wall_s))

    def cost(p: Point) -> float:
        known = seen.get((p.name, p.sampler, p.S, p.K, p.n))
        return known if known is not None else 1e-6 * p.n * p.S * p.K
    return cost


class RayExecutor:
    """Runs points on Ray worker actors; yields pending and completed records as they arrive."""

    times_rounds = True  # the runner hands it the pending points too and does no rounds itself

    def __init__(self, settings: ExecutorSettings | None = None, history: dict[str, Record] | None = None) -> None:
        self.settings = settings or ExecutorSettings(kind="ray")
        if self.settings.workers < 1:
            raise UsageError(f"--workers {self.settings.workers}: needs at least 1 worker")
        self.history = history or {}
        self.cost = estimated_seconds(self.history)
        self.actors: list[Any] = []
        self.pids: dict[Any, int] = {}  # actor → its process id
        self.nodes: dict[Any, str] = {}  # actor → the Ray node it runs on
        self.loaded: dict[Any, set[tuple]] = {}  # actor → the generators (loaded_key) it has loaded
        self.placements: dict[str, str] = {}  # point id → node id of the worker that measured its quality
        self.inflight: dict[Any, tuple[Any, Point]] = {}
        self.interrupted = threading.Event()
        self._stopping = False
        self._ray: Any = None
        self._started_ray = False
        self._private = False
        self._actor_cls: Any = None

    # ------------------------------------------------------------------ Ctrl-C
    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.interrupted.set()
        if not self._stopping:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def _sigint(self) -> Iterator[None]:
        """Our SIGINT handler for the executor's life (main thread only: elsewhere Python delivers none)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    @contextlib.contextmanager
    def _redelivered(self) -> Iterator[None]:
        """Around a blocking call that polls no flag (`ray.init`, seconds): once Ctrl-C was pressed,
        send SIGINT to the main thread again every REDELIVER_S until the call is left. One raised
        inside a finalizer or a callback is swallowed ("Exception ignored in …"), and the call would
        otherwise run to its end before the interrupt is noticed."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        left = threading.Event()
        main = threading.main_thread().ident
        guard = threading.Lock()

        def redeliver() -> None:
            while not left.wait(REDELIVER_S):
                with guard:
                    if self.interrupted.is_set() and not self._stopping and not left.is_set():
                        signal.pthread_kill(main, signal.SIGINT)  # type: ignore[arg-type]

        helper = threading.Thread(target=redeliver, name="scalebench-ctrl-c", daemon=True)
        helper.start()
        try:
            yield
        finally:
            with guard:
                left.set()
            helper.join()

    def _check(self) -> None:
        if self.interrupted.is_set():
            raise KeyboardInterrupt

    def _wait_one(self, refs: list[Any]) -> Any:
        """The first finished of `refs`, waiting in short slices: a blocking ray.wait holds off Python's
        signal handling, and the flag catches an interrupt that something swallowed."""
        while True:
            self._check()
            ready, _ = self._ray.wait(refs, num_returns=1, timeout=SLICE_S)
            if ready:
                return ready[0]

    # ------------------------------------------------------------------ Ray life cycle
    def _start(self, points: list[Point]) -> None:
        ray = self._ray = import_ray()
        s = self.settings
        threads = max((p.threads for p in points), default=1)
        t0 = time.perf_counter()
        if not ray.is_initialized():
            path = os.pathsep.join([str(Path(__file__).resolve().parents[2]), *filter(None, [os.environ.get("PYTHONPATH")])])
            self._started_ray = True  # before init: an init interrupted half-way is shut down too
            if s.address is None:
                self._private = True
                log.info("ray: starting a private local Ray (%d CPUs) for %d workers", s.workers * threads, s.workers)
                # its processes inherit this environment: no runtime_env, whose set-up each worker would wait for
                with _environ(PYTHONPATH=path), self._redelivered():
                    ray.init(address="local", num_cpus=s.workers * threads, include_dashboard=False,
                             log_to_driver=False, configure_logging=False)
            else:
                log.info("ray: joining the Ray cluster at %s", s.address)
                with self._redelivered():
                    ray.init(address=s.address, log_to_driver=False, configure_logging=False,
                             runtime_env={"env_vars": {"PYTHONPATH": path}})
            self._check()  # a Ctrl-C that init outlived: no workers are started
        cuda = any(p.device.startswith("cuda") for p in points)
        self._actor_cls = ray.remote(num_cpus=threads, num_gpus=s.gpus_per_worker if cuda else 0,
                                     max_restarts=0)(Worker)
        self._spawn(s.workers)
        log.info("ray: %d workers ready on %d node(s) after %.1f s", len(self.actors), len(set(self.nodes.values())),
                 time.perf_counter() - t0)

    def _spawn(self, n: int) -> list[Any]:
        """Start n workers at once (they boot in parallel) and wait until each has imported torch."""
        new = [self._actor_cls.remote() for _ in range(n)]
        self.actors += new  # known before they are ready: an interrupt now still kills them
        refs = {a.ready.remote(): a for a in new}
        while refs:
            ref = self._wait_one(list(refs))
            actor = refs.pop(ref)
            self.pids[actor], self.nodes[actor] = self._ray.get(ref)
            self.loaded[actor] = set()
        return new

    def _stop(self) -> None:
        """Kill the workers now (points in flight are lost, their records are not), then shut a Ray
        this sweep started down; further Ctrl-Cs are ignored until this is done."""
        ray, self._stopping, t0 = self._ray, True, time.perf_counter()
        try:
            if ray is not None and ray.is_initialized():
                for actor in self.actors:
                    with contextlib.suppress(Exception):
                        ray.kill(actor, no_restart=True)
            if self._private:  # every worker is a local process of ours: do not wait for them
                for pid in self.pids.values():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
            if ray is not None and self._started_ray:
                ray.shutdown()
                log.info("ray: shut down in %.1f s", time.perf_counter() - t0)
        finally:
            self._started_ray = self._private = self._stopping = False
            self.actors, self.pids, self.nodes, self.loaded, self.inflight = [], {}, {}, {}, {}

    def busy_pids(self) -> list[int]:
        """Process ids of the workers measuring a point right now (tests kill one to check the retry)."""
        return [self.pids[a] for a, _ in self.inflight.values()]

    # ------------------------------------------------------------------ the executor interface
    def run(self, points: Iterable[Point], on_start: Callable[[Point], None] | None = None,
            pending: Iterable[tuple[Point, Record]] = (), order_seed: int = 0
            ) -> Iterator[Record]:
        points, pending = list(points), list(pending)
        if not points and not pending:
            return
        with self._sigint():
            try:
                self._start(points or [p for p, _ in pending])
                yield from self._quality(points, on_start, pending)
                yield from self._rounds(pending, order_seed)
                self._check()  # a Ctrl-C swallowed during the last writes still ends as an interrupt
            finally:
                self._stop()

    def _next(self, actor: Any, queue: list[Point]) -> Point:
        """The point a free worker takes: see the module docstring (longest first, with affinity)."""
        floor = AFFINITY * self.cost(queue[0])
        mine = self.loaded.get(actor, set())
        others = set().union(*(keys for a, keys in self.loaded.items() if a is not actor))
        others |= {loaded_key(p) for a, p in self.inflight.values() if a is not actor}
        for prefer in (lambda k: k in mine, lambda k: not mine and k not in others):
            for i, p in enumerate(queue):
                if self.cost(p) < floor:
                    break  # the queue is longest first: nothing further qualifies
                if prefer(loaded_key(p)):
                    return queue.pop(i)
        return queue.pop(0)

    def _quality(self, points: list[Point], on_start: Callable[[Point], None] | None,
                 pending: list[tuple[Point, Record]]) -> Iterator[Record]:
        ray = self._ray
        queue = sorted(points, key=self.cost, reverse=True)
        tries: dict[str, int] = {}
        idle = list(self.actors)
        inflight = self.inflight
        if queue:
            log.info("ray: quality passes of %d points on %d workers", len(queue), len(self.actors))

        def fill() -> None:
            while idle and queue:
                actor = idle.pop()
                p = self._next(actor, queue)
                if on_start:
                    on_start(p)
                inflight[actor.measure.remote(p)] = (actor, p)
                self.loaded[actor].add(loaded_key(p))

        fill()
        while inflight:
            ref = self._wait_one(list(inflight))
            actor, p = inflight.pop(ref)
            try:
                rec = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                self._check()  # a worker killed by our own stop is not a fault of the point
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
            self.placements[p.point_id] = self.nodes.get(actor, "")
            if rec.pending:
                pending.append((p, rec))
            yield rec

    def _rounds(self, pending: list[tuple[Point, Record]], order_seed: int) -> Iterator[Record]:
        """Each live worker times its share (balanced by estimated cost) in interleaved rounds."""
        ray = self._ray
        left, attempt = list(pending), 0
        if left:
            log.info("ray: timing rounds over %d points on %d workers", len(left), len(self.actors))
        while left and attempt <= self.settings.retries:
            shares = _balance(left, self.actors, self.cost, self.loaded)
            refs = {a.time_rounds.remote(share, order_seed): (a, share)
                    for a, share in zip(self.actors, shares, strict=True) if share}
            left = []
            while refs:
                ref = self._wait_one(list(refs))
                actor, share = refs.pop(ref)
                try:
                    yield from ray.get(ref)
                except ray.exceptions.RayActorError as e:
                    self._check()
                    log.warning("a worker died while timing %d points (%s)", len(share), _short(e))
                    self._replace(actor)
                    left += share
            attempt += 1
        if left:
            log.warning("%d points keep their pending timing after worker deaths; run the sweep again to "
                        "time them", len(left))

    def _replace(self, dead: Any) -> Any:
        self.actors.remove(dead)
        for table in (self.pids, self.nodes, self.loaded):
            table.pop(dead, None)
        return self._spawn(1)[0]


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """os.environ with `values` set, restored afterwards (for the processes started meanwhile)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _balance(pairs: list[tuple[Point, Record]], actors: list[Any], cost: Callable[[Point], float],
             loaded: dict[Any, set[tuple]] | None = None) -> list[list[tuple[Point, Record]]]:
    """Greedy longest-first split of the pending points into one share per worker of similar cost; a
    point goes to a worker that has its generator loaded when that worker's share stays within the
    ideal one (total / workers), else to the least loaded worker."""
    n, loaded = len(actors), loaded or {}
    shares: list[list[tuple[Point, Record]]] = [[] for _ in range(n)]
    load = [0.0] * n
    ideal = sum(cost(p) for p, _ in pairs) / max(n, 1)
    for pair in sorted(pairs, key=lambda pr: cost(pr[0]), reverse=True):
        c, key = cost(pair[0]), loaded_key(pair[0])
        fits = [i for i in range(n) if key in loaded.get(actors[i], ()) and load[i] + c <= ideal]
        i = min(fits, key=lambda j: load[j]) if fits else load.index(min(load))
        shares[i].append(pair)
        load[i] += c
    return shares


def _short(e: BaseException) -> str:
    return str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__


def _died(p: Point, tries: int, e: BaseException) -> Record:
    from scalebench.provenance import now
    from scalebench.sweep.measure import new_record

    rec = new_record(p)
    rec.update(error=f"WorkerDied: the worker measuring this point died {tries} times "
                     f"(last: {_short(e)}); run the sweep again to retry it", ended_at=now())
    return Record.from_json(rec)
