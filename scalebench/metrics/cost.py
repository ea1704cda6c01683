"""Cost of sampling besides wall-clock: counted network calls, FLOPs and peak memory.

- **NFE measured**: forward hooks on the networks a generator exposes (`networks()`) count
  the calls one batch really makes, next to the count the generator declares.
- **FLOPs per sample**: `torch.utils.flop_counter` on a small batch (hardware-independent).
  It is imported only when FLOPs are counted, since it pulls in torch._dynamo (≈1 s).
- **Peak memory per batch**: bytes allocated by torch above the level before the batch, at
  the batch's high-water mark. CUDA: the caching allocator's peak counter. CPU: the
  tensor storages alive at once, tracked per op (`_cpu_peak`).
  Neither counts the weights or anything allocated before the batch started.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import torch

log = logging.getLogger(__name__)

PEAK_MEMORY_KIND = {
    "cpu": "torch CPU tensor storage bytes above the pre-batch level, peak during one batch (live storages "
           "tracked per op)",
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
    """Peak bytes of tensor storages created during `fn()` and alive at the same time.

    A dispatch mode sees every op's outputs; each new storage adds its bytes until Python's
    finaliser on it runs (storages keep one PyObject for life, so a view keeps its base's bytes
    counted). The profiler's memory events, used before, also see kernels' scratch buffers, but
    they cost ~50 kB of RSS per op and 11 s on a 70k-op sampler (mar at S = 64, K = 50), and the
    process kept the 3.5 GB it took.
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    live = {"level": 0, "peak": 0}
    seen: set[int] = set()

    def free(key: int, nbytes: int) -> None:
        seen.discard(key)
        live["level"] -= nbytes

    class LiveStorages(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            out = func(*args, **(kwargs or {}))
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                    st = t.untyped_storage()
                    key, nbytes = st.data_ptr(), st.nbytes()
                    if nbytes and key not in seen:
                        seen.add(key)
                        live["level"] += nbytes
                        live["peak"] = max(live["peak"], live["level"])
                        weakref.finalize(st, free, key, nbytes)
            return out

    with LiveStorages():
        fn()
    return int(live["peak"])


