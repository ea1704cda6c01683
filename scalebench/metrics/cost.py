"""Cost of sampling besides wall-clock: counted network calls, FLOPs and peak memory.

- **NFE measured**: forward hooks on the networks a generator exposes (`networks()`) count
  the calls one batch really makes, next to the count the generator declares.
- **FLOPs per sample**: `torch.utils.flop_counter` on a small batch (hardware-independent).
  It is imported only when FLOPs are counted, since it pulls in torch._dynamo (≈1 s).
- **Peak memory per batch**: bytes allocated by torch above the level before the batch, at
  the batch's high-water mark. CUDA: the caching allocator's peak counter. CPU: the
  allocation events of torch's profiler (`profile_memory=True`), replayed in time order.
  Neither counts the weights or anything allocated before the batch started.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

log = logging.getLogger(__name__)

PEAK_MEMORY_KIND = {
    "cpu": "torch CPU allocations above the pre-batch level, peak during one batch (profiler memory events)",
    "cuda": "torch CUDA allocator bytes above the pre-batch level, peak during one batch (max_memory_allocated)",
}


class CallCounter:
    """Counts forward calls of the given networks while active (one per top-level forward)."""

    def __init__(self, networks: Mapping[str, torch.nn.Module] | None) -> None:
        self.networks = dict(networks or {})
        self.count = 0
        self._handles: list[Any] = []

    @property
    def available(self) -> bool:
        return bool(self.networks)

    def _hook(self, *_: Any) -> None:
        self.count += 1

    def __enter__(self) -> CallCounter:
        self.count = 0
        self._handles = [m.register_forward_pre_hook(self._hook) for m in self.networks.values()]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def networks_of(gen: Any) -> dict[str, torch.nn.Module]:
    """The generator's declared networks ({} when it declares none)."""
    fn = getattr(gen, "networks", None)
    if fn is None:
        return {}
    nets = fn()
    bad = [k for k, v in dict(nets).items() if not isinstance(v, torch.nn.Module)]
    if bad:
        raise TypeError(f"networks()[{bad[0]!r}] is not a torch.nn.Module; return {{name: module}}")
    return dict(nets)


def count_flops(fn: Callable[[], Any], n: int) -> float:
    """FLOPs per sample of `fn()` (which draws `n` samples), counted by torch.utils.flop_counter."""
    t0 = time.perf_counter()
    from torch.utils.flop_counter import FlopCounterMode

    log.debug("flop_counter imported in %.2fs", time.perf_counter() - t0)
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        fn()
    return counter.get_total_flops() / n


def peak_memory(fn: Callable[[], Any], device: str) -> tuple[int | None, str]:
    """(peak bytes above the starting level while `fn()` runs, what was measured)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before), PEAK_MEMORY_KIND["cuda"]
    return _cpu_peak(fn), PEAK_MEMORY_KIND["cpu"]


def _cpu_peak(fn: Callable[[], Any]) -> int | None:
    from torch.profiler import ProfilerActivity, profile

    with _quiet_profiler(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    try:
        events = prof.profiler.kineto_results.events()
        deltas = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    except AttributeError:  # a torch without kineto memory events
        log.warning("this torch build exposes no profiler memory events; peak memory not recorded")
        return None
    level = peak = 0
    for _, nbytes in deltas:
        level += nbytes
        peak = max(peak, level)
    return int(peak)


@contextlib.contextmanager
def _quiet_profiler() -> Iterator[None]:
    """Kineto prints start/stop lines on stderr; they are noise in a sweep's log."""
    import os

    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
