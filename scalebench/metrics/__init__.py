"""Metric declarations. The direction of "better" and the tolerance live here, once.

Heavy metric code (torchmetrics, feature nets) lives in submodules and is imported lazily.
"""

from __future__ import annotations

from scalebench.api import MetricSpec

METRICS: dict[str, MetricSpec] = {m.name: m for m in [
    MetricSpec("fid", "lower", unit="", rel_tolerance=0.10,
               description="Fréchet distance of feature-net features to the reference split"),
    MetricSpec("kid", "lower", unit="", rel_tolerance=0.20,
               description="kernel (MMD) distance of feature-net features to the reference split"),
    MetricSpec("ref_nll", "lower", unit="bits/dim", rel_tolerance=0.05,
               description="bits/dim of the samples under the separate reference AR model (Gen PPL)"),
    MetricSpec("precision", "higher", rel_tolerance=0.05,
               description="fraction of samples inside the real k-NN feature manifold (Kynkäänniemi et al. 2019)"),
    MetricSpec("recall", "higher", rel_tolerance=0.05,
               description="fraction of real reference images inside the samples' k-NN feature manifold"),
    MetricSpec("memorisation", "lower", rel_tolerance=0.5,
               description="fraction of samples nearer (pixels) to a training image than 99% of unseen real images"),
    MetricSpec("memorisation_feat", "lower", rel_tolerance=0.5,
               description="the same in the feature net's embedding"),
    MetricSpec("diversity", "higher", unit="", rel_tolerance=0.05,
               description="mean pairwise feature distance of samples / that of real data (≈1 good, 0 collapse)"),
    MetricSpec("test_nll", "lower", unit="bits/dim", rel_tolerance=0.02,
               description="test-split NLL in bits/dim (exact or a bound: see nll_kind)"),
    MetricSpec("latency_s", "lower", kind="cost", unit="s/sample", rel_tolerance=0.10,
               description="median wall-clock seconds per sample"),
    MetricSpec("nfe", "lower", kind="cost", unit="calls",
               description="network function evaluations in sequence per batch"),
    MetricSpec("flops", "lower", kind="cost", unit="FLOP/sample",
               description="FLOPs per sample, counted by torch.utils.flop_counter"),
    MetricSpec("peak_mem_bytes", "lower", kind="cost", unit="bytes",
               description="bytes torch allocated above the pre-batch level during one batch (CPU: live tensor storages tracked per op; CUDA: allocator peak)"),
]}
