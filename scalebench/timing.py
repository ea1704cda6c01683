"""Honest wall-clock timing: warm-up, device synchronisation, repeats until both a minimum
count and a minimum duration are met (MLPerf loadgen's rule), raw samples kept, percentiles.

On CUDA the interval is read from CUDA events recorded on the current stream (what the
GPU actually spent, without host jitter); on CPU from `time.perf_counter`.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TimingSettings:
    warmup: int = 1
    min_repeats: int = 3
    min_duration_s: float = 0.5
    max_repeats: int = 50
    # "interleaved": after the quality pass, `rounds` rounds each time one batch of every point in a
    # seeded shuffled order, so machine drift spreads over all points instead of bending one;
    # "contiguous": each point's repeats back to back (the old behaviour, kept for comparison).
    mode: str = "interleaved"
    rounds: int = 7
    # glibc keeps freed memory instead of returning it to the OS between batches (`set_allocator`)
    steady_allocator: bool = True


TIMING_MODES = ("interleaved", "contiguous")


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: str) -> tuple[object, float]:
    """Run `fn` once and return (its result, elapsed seconds) with device synchronisation.

    On CUDA the events are recorded on the current stream *of the point's device* (`cuda:1`
    times cuda:1, whichever device is current in the process).
    """
    if device.startswith("cuda"):
        import torch

        with torch.cuda.device(torch.device(device)):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            out = fn()
            end.record()
            end.synchronize()
            return out, start.elapsed_time(end) / 1e3
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def repeat_until(fn: Callable[[], object], device: str, settings: TimingSettings,
                 already: list[float] | None = None) -> list[float]:
    """Extend `already` (seconds per call) until min_repeats and min_duration_s are both met."""
    samples = list(already or [])
    while len(samples) < settings.max_repeats and (
        len(samples) < settings.min_repeats or sum(samples) < settings.min_duration_s
    ):
        samples.append(time_call(fn, device)[1])
    return samples


def percentile(samples: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]) of raw samples."""
    xs = sorted(samples)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples) if samples else float("nan"),
            "p10": percentile(samples, 10), "p90": percentile(samples, 90)}


@functools.cache
def calibration_figure(device: str = "cpu", repeats: int = 41) -> float:
    """Seconds for a fixed small workload (a 256×256 matmul chain + a small conv), median of
    `repeats`. Dividing latencies by it makes results from different machines comparable.
    Measured once per process and device (a sweep's points all share it)."""
    import torch  # here, not at import: reading specs and finished runs needs no torch

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(256, 256, generator=gen).to(device)
    x = torch.randn(64, 8, 16, 16, generator=gen).to(device)
    w = torch.randn(16, 8, 3, 3, generator=gen).to(device)

    def work() -> None:
        y = a
        for _ in range(8):
            y = torch.tanh(y @ a)
        torch.nn.functional.conv2d(x, w, padding=1).relu_().sum().item()
        y.sum().item()

    with torch.inference_mode():
        work()
        times = [time_call(work, device)[1] for _ in range(repeats)]
    return statistics.median(times)


# glibc mallopt parameters (malloc.h) and its defaults; the thresholds are in bytes.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
GLIBC_DEFAULT_THRESHOLD = 128 * 1024
STEADY = {"trim_threshold": 1 << 30, "mmap_threshold": 32 << 20}  # 32 MiB is glibc's maximum on 64-bit
_ALLOCATOR: dict[str, object] = {}


def set_allocator(steady: bool) -> dict[str, object]:
    """Make the C allocator keep freed memory (steady) or restore glibc's thresholds; once per change.

    Without it, glibc hands large freed blocks back to the OS after every batch and page-faults
    them in again on the next one (tens of thousands of minor faults per diffusion batch), which
    shows up as latency that depends on what ran before. Returns what is in effect (recorded in
    every point's record); {"steady": False, "available": False} where there is no glibc.
    """
    if _ALLOCATOR.get("steady") == steady:
        return dict(_ALLOCATOR)
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        _ALLOCATOR.clear()
        _ALLOCATOR.update(steady=False, available=False)
        return dict(_ALLOCATOR)
    trim, mmap = ((STEADY["trim_threshold"], STEADY["mmap_threshold"]) if steady
                  else (GLIBC_DEFAULT_THRESHOLD, GLIBC_DEFAULT_THRESHOLD))
    ok = bool(mallopt(M_TRIM_THRESHOLD, trim)) and bool(mallopt(M_MMAP_THRESHOLD, mmap))
    _ALLOCATOR.clear()
    _ALLOCATOR.update(steady=steady and ok, available=ok, trim_threshold=trim, mmap_threshold=mmap)
    return dict(_ALLOCATOR)
