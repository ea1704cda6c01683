"""The committed quick baseline is reproduced bit for bit by today's code (same samples → same FID).

Every refactor of a shipped family must keep its samples byte-identical for the same seed; this
re-measures a few committed points through the real measuring path and compares the stored
preview bytes and every sample metric. If a change is *meant* to alter samples (a sampler fix,
a retrained checkpoint), regenerate `results/baseline-quick-cpu` in the same commit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scalebench.results import latest_records
from scalebench.sweep.measure import execute_point
from scalebench.sweep.plan import Point, fingerprint_of, generator_identity
from scalebench.timing import TimingSettings

BASELINE = Path(__file__).resolve().parents[1] / "results" / "baseline-quick-cpu"
CASES = [("gpt", "ancestral", 16, 1, 0), ("diffusion", "ddim", 1, 5, 1), ("diffusion", "ddpm", 1, 10, 0)]


def _baseline(generator: str, sampler: str, S: int, K: int, seed: int) -> dict:
    for rec in latest_records(BASELINE).values():
        if (rec.generator, rec.sampler, rec.S, rec.K, rec.seed) == (generator, sampler, S, K, seed):
            return rec
    raise AssertionError(f"{BASELINE} has no point {generator}/{sampler} S={S} K={K} seed={seed}")


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}-S{c[2]}-K{c[3]}-seed{c[4]}" for c in CASES])
def test_committed_quick_points_are_reproduced_exactly(case: tuple) -> None:
    base = _baseline(*case)
    identity = generator_identity(base.generator)
    metrics = tuple(m for m in base.metrics if m != "test_nll")
    # issue 22 re-based the judges that are not the samples' own: refnet retrained on the features split,
    # every data floor redrawn (200 draws without replacement) and the memorisation threshold cross-fitted.
    # Those values are compared again once results/baseline-quick-cpu is regenerated (issue 23); the samples
    # (preview) and the sample metrics of the unchanged feature net must still match exactly.
    changed = ("ref_nll", "memorisation", "memorisation_feat")
    compared = tuple(m for m in metrics if m not in changed and not m.endswith(("_floor", "_floor_sd")))
    point = Point(generator=base.generator, sampler=base.sampler, S=base.S, K=base.K, seed=base.seed,
                  n=base.n, batch_size=base.batch_size, device="cpu", dtype=base.dtype, metrics=metrics,
                  timing=TimingSettings(warmup=0, min_repeats=1, min_duration_s=0.0),
                  fingerprint=fingerprint_of(identity), threads=1, identity=tuple(sorted(identity.items())))
    rec = execute_point(point)
    assert rec.status == "ok", rec.error
    assert rec.preview == base.preview  # the first 16 samples, byte for byte
    for m in compared:
        assert rec.metrics[m] == pytest.approx(base.metrics[m], rel=1e-6, abs=1e-6), m  # KID sits near 0: float32 sums
