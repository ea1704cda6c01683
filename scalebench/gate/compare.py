"""Compare two result sets point by point and decide: the speed gate of CI.

A latency regression needs both a ratio beyond the threshold *and* significance after the
correction across points (`scalebench.gate.stats`), so neither noise, nor a burst of load, nor
a real but negligible shift fails a build. Quality metrics and the deterministic costs (NFE,
FLOPs) move against their declared direction by more than their `rel_tolerance` (from
`scalebench.metrics.METRICS`); data floors and peak memory are shown only.

Each side is one or more run directories or folders of them (e.g. the rounds of `scalebench
ab`, or several stored runs of a baseline); the records of one point across runs are pooled
(`scalebench.gate.pooling`) and matched (`scalebench.gate.matching`); whatever stays
unmatched is listed, never dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from scalebench.gate.decide import DEFAULT_ALPHA, Decision, Verdict, decide_latency, metric_decision
from scalebench.gate.matching import Match, match_points
from scalebench.gate.pooling import INFO_COSTS, KEY_FIELDS, TOLERANCE_COSTS, load_side
from scalebench.gate.report import CompareReport, Row
from scalebench.gate.stats import (
    CORRECTION_NAMES,
    CORRECTIONS,
    DEFAULT_CORRECTION,
    LatencyTest,
    adjust_p_values,
    attainable,
    latency_test,
    ratio_of,
)
from scalebench.gate.thresholds import CompareError, Thresholds


def _row(m: Match, metric: str, b: float | None, c: float | None, d: Decision, threshold: float | None) -> Row:
    r = m.baseline.record
    def clean(v: float | None) -> float | None:
        return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v

    return Row(point=m.baseline.label, generator=str(r.generator), sampler=str(r.sampler),
               S=r.S, K=r.K, seed=r.seed, metric=metric, baseline=clean(b),
               candidate=clean(c), ratio=clean(d.ratio), p_value=d.p_value, test=d.test, threshold=threshold,
               verdict=d.verdict, note=d.note, matched_by=m.by, baseline_id=m.baseline.point_id,
               candidate_id=m.candidate.point_id, device=r.device,
               p_raw=d.p_raw if d.p_raw is not None else d.p_value)


def _latency_row(m: Match, placeholder: Row, d: Decision, t: LatencyTest) -> Row:
    row = _row(m, "latency_s", m.baseline.latency, m.candidate.latency, d, placeholder.threshold)
    return Row(**{**asdict(row), "note": "; ".join(filter(None, [d.note, placeholder.note])),
                  "ratio_ci": t.ci, "rounds": t.rounds, "samples": t.samples})


def _matched_rows(m: Match, thresholds: Thresholds, alpha: float) -> tuple[list[Row], LatencyTest | None, float]:
    """Rows of one matched point: status, latency (a placeholder, decided by the caller from the
    returned LatencyTest), deterministic costs, quality, info."""
    b, c = m.baseline, m.candidate
    if not c.ok:
        err = c.errors[-1] if c.errors else "failed"
        verdict: Verdict = "failed" if b.ok else "info"
        note = f"fails in the candidate: {err}" if b.ok else f"fails on both sides: {err}"
        return [_row(m, "status", None, None, Decision(verdict, math.nan, note=note), None)], None, math.nan
    if not b.ok:
        err = b.errors[-1] if b.errors else "failed"
        return [_row(m, "status", None, None, Decision("improvement", math.nan, note=f"failed in the baseline: {err}"),
                     None)], None, math.nan
    thr = thresholds.for_generator(str(b.record.generator))
    test = latency_test(b.samples, c.samples, b.latency, c.latency, b.run_latency, c.run_latency)
    partial = [f"{s.ok_runs}/{len(s.runs)} runs ok in the {name}" for name, s in (("baseline", b), ("candidate", c))
               if s.ok_runs < len(s.runs)]
    rows = [_row(m, "latency_s", b.latency, c.latency, Decision("info", test.ratio, note="; ".join(partial)), thr)]
    from scalebench.metrics import METRICS

    names = [k for k in TOLERANCE_COSTS if k in b.values or k in c.values]
    names += sorted(k for k in b.values.keys() | c.values.keys() if k not in (*TOLERANCE_COSTS, *INFO_COSTS))
    for k in names:
        if k not in b.values or k not in c.values:
            only = "baseline" if k in b.values else "candidate"
            rows.append(_row(m, k, b.values.get(k), c.values.get(k),
                             Decision("info", math.nan, note=f"only in the {only}"), None))
            continue
        d = metric_decision(k, b.values[k], c.values[k])
        rows.append(_row(m, k, b.values[k], c.values[k], d, METRICS[k].rel_tolerance if k in METRICS else None))
    for k in sorted(b.floors.keys() & c.floors.keys()):  # a metric's data floor (its mean)
        rows.append(_row(m, k, b.floors[k], c.floors[k], Decision(
            "info", ratio_of(b.floors[k], c.floors[k]), note="data floor: shown, not gated"), None))
    for k in INFO_COSTS:
        if k in b.values and k in c.values:
            rows.append(_row(m, k, b.values[k], c.values[k],
                             Decision("info", ratio_of(b.values[k], c.values[k]), note="not gated"), None))
    return rows, test, thr


def compare_runs(baseline: str | Path | Sequence[str | Path], candidate: str | Path | Sequence[str | Path],
                 thresholds: Thresholds | None = None, alpha: float = DEFAULT_ALPHA,
                 normalize: bool = False, correction: str = DEFAULT_CORRECTION) -> CompareReport:
    """Compare two result sets and decide.

    Each side is one or more run dirs or folders of run dirs; the records of one point are
    pooled across all of them (raw timing samples included). The latency p-values of all
    tested points form one family per direction (slower, faster) and are adjusted by
    `correction` ("holm" by default, "bh", or "none") before the decision.
    """
    if not 0 < alpha < 1:
        raise CompareError(f"--alpha {alpha} must lie strictly between 0 and 1; the usual choice is 0.05")
    if correction not in CORRECTIONS:
        raise CompareError(f"--correction {correction!r}; use one of {', '.join(CORRECTIONS)} (default holm)")
    thresholds = thresholds or Thresholds()
    sides = []
    for name, paths in (("baseline", baseline), ("candidate", candidate)):
        paths = [paths] if isinstance(paths, str | Path) else list(paths)
        if not paths:
            raise CompareError(f"no {name} results given; pass at least one run directory per side")
        pooled = load_side(paths, normalize)
        if not pooled:
            raise CompareError(f"{name} {', '.join(map(str, paths))} holds no records; "
                               "pass a run directory written by `scalebench run`")
        sides.append((paths, pooled))
    (b_paths, base), (c_paths, cand) = sides
    matches, unmatched = match_points(base, cand)
    if not matches:
        raise CompareError(f"no point of {', '.join(map(str, b_paths))} matches one of {', '.join(map(str, c_paths))} "
                           f"(by point_id or by {'/'.join(KEY_FIELDS)}); compare runs of the same spec and device")
    per_match = [(m, *_matched_rows(m, thresholds, alpha)) for m in matches]
    tested = [(i, t) for i, (_, _, t, _) in enumerate(per_match) if t is not None and t.tested]
    slow = adjust_p_values([t.p_slow for _, t in tested], correction)  # type: ignore[misc]
    fast = adjust_p_values([t.p_fast for _, t in tested], correction)  # type: ignore[misc]
    adjusted = {i: (ps, pf) for (i, _), ps, pf in zip(tested, slow, fast, strict=True)}
    label = "" if correction == "none" or len(tested) <= 1 else f"{CORRECTION_NAMES[correction]} over {len(tested)}"
    rows: list[Row] = []
    for i, (m, mrows, test, thr) in enumerate(per_match):
        if test is not None:
            ps, pf = adjusted.get(i, (None, None))
            reach = attainable(test, len(tested), correction, alpha)
            mrows[0] = _latency_row(m, mrows[0], decide_latency(test, thr, alpha, ps, pf, label if i in adjusted else "",
                                                                reach), test)
        rows += mrows
    return CompareReport(baseline=[str(p) for p in b_paths], candidate=[str(p) for p in c_paths],
                         thresholds=thresholds, alpha=alpha, normalize=normalize, rows=rows,
                         unmatched=unmatched, matched=len(matches), correction=correction, family=len(tested))
