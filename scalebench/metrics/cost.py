"""Cost of sampling besides wall-clock: counted network calls, FLOPs and peak memory.

- **NFE measured**: forward hooks on the networks a generator exposes (`networks()`) count
  the calls one batch really makes, next to the count the generator declares.
- **FLOPs per sample**: `torch.utils.flop_counter` on a small batch (hardware-independent),
  with a formula for CPU attention, which torch counts as 0 (`attention_flop_formulas`).
  It is imported only when FLOPs are counted, since it pulls in torch._dynamo (≈1 s).
  `layer_flops` is an independent count from layer shapes, to check it (tests, benchmarks).
- **Peak memory per batch**: bytes allocated by torch above the level before the batch, at
  the batch's high-water mark. CUDA: the caching allocator's peak counter. CPU: the
  tensor storages alive at once, tracked per op (`_cpu_peak`).
  Neither counts the weights or anything allocated before the batch started.
"""

from __future__ import annotations

import logging
import math
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


def sdpa_flops(q: tuple[int, ...], k: tuple[int, ...], v: tuple[int, ...]) -> int:
    """FLOPs of one attention call: QKᵀ (2·B·L·S·E) plus AV (2·B·L·S·Ev), B = q's leading dims.

    Convention: the **full L × S rectangle** whatever the mask (none, `is_causal`, boolean or
    float). Why: it is torch's own formula for the CUDA flash/efficient/cudnn kernels, so a point
    counts the same FLOPs on CPU and GPU; the CPU math path and every explicit mask compute the
    whole rectangle; and one attention pattern counts the same whether a caller writes it as
    `is_causal` or as a `tril` mask (the transformer does both, by whether a cache is in use).
    The flash kernels skip key blocks past the diagonal under `is_causal`, so for that case this
    is up to 2× the attention work done (cached decoding, with one query per step, is exact).
    Softmax and scaling are elementwise and not counted, like every elementwise op.
    """
    batch = math.prod(q[:-2])  # with grouped-query attention, q carries all the heads computed
    length, e = q[-2], q[-1]
    return 2 * batch * length * k[-2] * (e + v[-1])


def _sdpa_forward(q, k, v, *_: Any, out_shape: Any = None, **__: Any) -> int:  # noqa: ANN001
    return sdpa_flops(q, k, v)


def _sdpa_backward(grad_out, q, k, v, *_: Any, out_shape: Any = None, **__: Any) -> int:  # noqa: ANN001
    """dQ, dK, dV: four products of the forward's sizes, 2× the forward (torch's convention for
    the CUDA kernels' backward; the recomputation of the probabilities is not counted)."""
    return 2 * sdpa_flops(q, k, v)


def attention_flop_formulas() -> dict[Any, Callable[..., int]]:
    """`custom_mapping` for FlopCounterMode: the CPU attention kernel and its backward.

    `F.scaled_dot_product_attention` on CPU reaches the counter as
    `aten._scaled_dot_product_flash_attention_for_cpu` (with or without a mask, `is_causal`,
    inference mode or grad), which torch's registry lacks, so it counted 0. The math fallback
    decomposes into `bmm`s torch counts already, and the CUDA kernels have torch's formulas.
    """
    aten = torch.ops.aten
    return {aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_forward,
            aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_backward}


def count_flops(fn: Callable[[], Any], n: int) -> float:
    """FLOPs per sample of `fn()` (which draws `n` samples), counted by torch.utils.flop_counter."""
    t0 = time.perf_counter()
    from torch.utils.flop_counter import FlopCounterMode

    log.debug("flop_counter imported in %.2fs", time.perf_counter() - t0)
    counter = FlopCounterMode(display=False, custom_mapping=attention_flop_formulas())
    with counter, torch.inference_mode():
        fn()
    return counter.get_total_flops() / n


def layer_flops(fn: Callable[[], Any], n: int) -> float:
    """FLOPs per sample of `fn()` from the shapes of its layers: an independent check of `count_flops`.

    2 × multiply-adds of every `F.linear` and convolution, plus attention's QKᵀ and AV
    (`sdpa_flops`), seen by a torch-function mode (above the dispatcher the FLOP counter hooks),
    with the formulas written here from shapes. Biases and elementwise ops are not counted (nor
    are they by the counter). A layer run with grad whose input (or weight) requires grad counts
    once more for each: the backward's input (weight) gradient costs its forward's multiply-adds.
    Raw `matmul`/`einsum` are not seen: a network that uses them shows up as a mismatch.
    """
    from torch.overrides import TorchFunctionMode

    conv = {torch.conv1d, torch.conv2d, torch.conv3d}
    conv_t = {torch.conv_transpose1d, torch.conv_transpose2d, torch.conv_transpose3d}
    sdpa = torch.nn.functional.scaled_dot_product_attention
    total = [0]

    def grad_factor(x: torch.Tensor, w: torch.Tensor) -> int:
        if not torch.is_grad_enabled():
            return 1
        return 1 + int(x.requires_grad) + int(w.requires_grad)

    class Layers(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            if func is torch.nn.functional.linear:
                x, w = args[0], args[1] if len(args) > 1 else kwargs["weight"]
                total[0] += 2 * x.numel() * w.shape[0] * grad_factor(x, w)
            elif func in conv:  # every output element: C_in/groups × kernel multiply-adds
                x, w = args[0], args[1]
                total[0] += 2 * out.numel() * math.prod(w.shape[1:]) * grad_factor(x, w)
            elif func in conv_t:  # every input element scatters into C_out/groups × kernel outputs
                x, w = args[0], args[1]
                total[0] += 2 * x.numel() * math.prod(w.shape[1:]) * grad_factor(x, w)
            elif func is sdpa:
                q, k, v = (args + tuple(kwargs.get(a) for a in ("query", "key", "value")[len(args):]))[:3]
                total[0] += sdpa_flops(tuple(q.shape), tuple(k.shape), tuple(v.shape)) * (
                    1 + 2 * int(torch.is_grad_enabled() and q.requires_grad))
            return out

    with Layers(), torch.inference_mode():
        fn()
    return total[0] / n


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


