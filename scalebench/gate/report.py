"""The outcome of a comparison: one row per point × metric, the verdict and the exit code.

Exit 1 on a regression (or a point failing only in the candidate); else 2 when some latency
point cannot show a slowdown at these settings (`undetectable`: too few rounds or samples for
its test to reach α after the correction), so an undecidable gate never passes silently; else 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from scalebench.gate.decide import Verdict
from scalebench.gate.matching import Unmatched
from scalebench.gate.stats import CORRECTION_NAMES, DEFAULT_CORRECTION, MIN_ROUNDS, min_p_value
from scalebench.gate.thresholds import Thresholds


@dataclass(frozen=True)
class Row:
    point: str
    generator: str
    sampler: str
    S: int
    K: int
    seed: int
    metric: str
    baseline: float | None
    candidate: float | None
    ratio: float | None
    p_value: float | None  # adjusted for multiplicity (what decided); p_raw before the correction
    test: str
    threshold: float | None
    verdict: Verdict
    note: str
    matched_by: str
    baseline_id: str
    candidate_id: str
    device: str | None = None
    p_raw: float | None = None
    ratio_ci: tuple[float, float] | None = None  # 95 % interval of the ratio (paired t over rounds only)
    rounds: int = 0  # runs paired per side (the t-test needs ≥ MIN_ROUNDS; fewer: Mann-Whitney on raw samples)
    samples: tuple[int, int] = (0, 0)  # raw timing samples per side


@dataclass
class CompareReport:
    baseline: list[str]
    candidate: list[str]
    thresholds: Thresholds
    alpha: float
    normalize: bool
    rows: list[Row]
    unmatched: list[Unmatched]
    matched: int
    correction: str = DEFAULT_CORRECTION
    family: int = 0  # latency points tested together (the size of the multiplicity correction)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.verdict in ("regression", "failed")]

    @property
    def insufficient(self) -> list[Row]:
        """Latency rows whose test cannot show a slowdown here (no data, or too few rounds/samples
        for the test to reach α after the correction): not decided."""
        return [r for r in self.rows if r.verdict == "insufficient"]

    @property
    def latency_points(self) -> int:
        """Latency rows with a ratio (the points the gate speaks about)."""
        return sum(1 for r in self.rows if r.metric == "latency_s" and r.verdict != "info")

    @property
    def undetectable(self) -> str:
        """One line when some latency point cannot show a slowdown at these settings (else ''):
        the gate then neither passes nor fails, it says what to change (exit 2)."""
        few = self.insufficient
        if not few:
            return ""
        rounds = min(r.rounds for r in few)
        n = min(min(r.samples) for r in few)
        m = max(self.family, 1)
        factor = m if self.correction != "none" else 1
        need = next(k for k in range(1, 64) if min_p_value(k, k) * factor < self.alpha)
        what = f"{rounds} paired round(s), {n} raw samples per side" if rounds else f"{n} raw samples per side"
        return (f"cannot detect any slowdown with {what} over {self.latency_points} latency point(s) "
                f"({len(few)} cannot reach p < {self.alpha:g}"
                + (f" after {CORRECTION_NAMES[self.correction]} over {m}" if factor > 1 else "")
                + f"): use ≥ {MIN_ROUNDS} paired rounds (ab --rounds, or -b/-c runs in pairs) or ≥ {need} raw "
                "samples per side")

    @property
    def improvements(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == "improvement"]

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    @property
    def exit_code(self) -> int:
        """1 on a regression (or a point that fails only in the candidate); else 2 when some latency
        point cannot detect a slowdown (`undetectable`); else 0."""
        return 1 if self.regressed else 2 if self.undetectable else 0

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {
            "baseline": self.baseline, "candidate": self.candidate, "alpha": self.alpha,
            "correction": self.correction, "family": self.family, "insufficient": len(self.insufficient),
            "threshold": self.thresholds.default,
            "thresholds": [{"generator": p, "threshold": v} for p, v in self.thresholds.rules],
            "normalize": self.normalize, "latency_unit": "calibration units" if self.normalize else "s/sample",
            "verdict": "regression" if self.regressed else "undetectable" if self.undetectable else "ok",
            "exit_code": self.exit_code, "undetectable": self.undetectable or None,
            "matched": self.matched, "regressions": len(self.regressions), "improvements": len(self.improvements),
            "rows": [{k: clean(v) for k, v in asdict(r).items()} for r in self.rows],
            "unmatched": [asdict(u) for u in self.unmatched],
        }
