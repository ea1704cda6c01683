"""Compare two result sets point by point: the speed-regression gate of CI.

A latency regression needs both a ratio beyond the threshold *and* significance — a one-sided
Mann-Whitney U test on the raw per-sample timings (asv's rule), plus, with ≥ 5 interleaved
rounds, a Wilcoxon signed-rank test across rounds — so neither noise, nor a burst of load, nor
a real but negligible shift fails a build. With too few raw samples for the exact Mann-Whitney
test to reach α (or none), a point is "not enough samples" and is not decided. The p-values of
all tested points are corrected for multiplicity (Holm–Bonferroni by default, so the chance of
any false alarm across the points is ≤ α; Benjamini–Hochberg or none on request). Quality
metrics and the deterministic costs (NFE, FLOPs) move against their declared direction by more
than their `rel_tolerance` (from `scalebench.metrics.METRICS`); data floors are shown only.

Each side is one or more run directories or folders of them (e.g. the rounds of `scalebench
ab`, or several stored runs of a baseline); the records of one point across runs are pooled,
raw timing samples included. Points are matched by `point_id`, else by their settings
(`KEY_FIELDS`, device included: a CPU point is never gated against a CUDA one) — ids differ
when a checkpoint or the version changes between revisions — and whatever stays unmatched is
listed, never dropped.
"""

from __future__ import annotations

import fnmatch
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from scalebench.errors import ScalebenchError
from scalebench.results import latest_records, read_manifest, run_dirs

KEY_FIELDS = ("generator", "sampler", "S", "K", "seed", "n", "batch_size", "dtype", "device")
DEFAULT_THRESHOLD = 0.10
DEFAULT_ALPHA = 0.05
MIN_ROUNDS = 3  # paired rounds from which the paired t-test applies (df ≥ 2); fewer: Mann-Whitney on raw samples
TOLERANCE_COSTS = ("nfe", "flops")  # deterministic: gated by rel_tolerance, no test
INFO_COSTS = ("peak_mem_bytes",)  # process-wide RSS peak on CPU: shown, never gated

Verdict = Literal["regression", "improvement", "ok", "failed", "info", "insufficient"]
# The data floor of metric m travels in records as metrics["m_floor"] / ["m_floor_sd"]: shown, never gated.
FLOOR_SUFFIXES = ("_floor_sd", "_floor")


class CompareError(ScalebenchError, ValueError):
    """Bad input to a comparison, phrased as one line naming the value and the fix."""


# ---------------------------------------------------------------------------- thresholds

_FRACTION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%?)\s*$")


def parse_fraction(text: str, where: str = "--threshold") -> float:
    """'10%' or '0.1' → 0.1. A bare number ≥ 1 is refused as ambiguous ('10' → write '10%')."""
    m = _FRACTION.match(text)
    if not m:
        raise CompareError(f"{where} {text!r} is not a percentage; write e.g. '10%' or '0.1', "
                           "or 'GLOB=PCT' such as 'gpt*=5%' for one generator")
    value, pct = float(m.group(1)), m.group(2)
    if pct:
        value /= 100
    elif value >= 1:
        raise CompareError(f"{where} {text!r} is ambiguous; write '{m.group(1)}%' for a percentage "
                           "or a fraction below 1 (0.1 = 10%)")
    if value > 10:
        raise CompareError(f"{where} {text!r} is above 1000%; use a percentage such as '10%'")
    return value


@dataclass(frozen=True)
class Thresholds:
    """Latency ratio thresholds: a default and per-generator glob rules (the last match wins)."""

    default: float = DEFAULT_THRESHOLD
    rules: tuple[tuple[str, float], ...] = ()

    @classmethod
    def parse(cls, items: Iterable[str] | None, default: float = DEFAULT_THRESHOLD) -> Thresholds:
        """From CLI values: '15%' sets the default, 'gpt*=5%' adds a rule for matching generators."""
        rules: list[tuple[str, float]] = []
        for item in items or ():
            if "=" in item:
                pattern, _, value = item.partition("=")
                pattern = pattern.strip()
                if not pattern:
                    raise CompareError(f"--threshold {item!r} has an empty generator glob; "
                                       "write e.g. 'gpt*=5%' or a plain '15%' for the default")
                rules.append((pattern, parse_fraction(value, f"--threshold {pattern}=")))
            else:
                default = parse_fraction(item)
        return cls(default=default, rules=tuple(rules))

    def for_generator(self, name: str) -> float:
        for pattern, value in reversed(self.rules):
            if fnmatch.fnmatchcase(name, pattern):
                return value
        return self.default

    def describe(self) -> str:
        return ", ".join([_pct(self.default)] + [f"{p}={_pct(v)}" for p, v in self.rules])


def _pct(v: float) -> str:
    return f"{v * 100:.4g}%"


# ---------------------------------------------------------------------------- pooled points

@dataclass
class PooledPoint:
    """One grid point of one side, pooled over the runs (rounds) that measured it."""

    point_id: str
    record: dict[str, Any]  # the latest ok record (or the latest failed one): settings, labels
    runs: list[str] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)  # per-sample seconds (or /calibration)
    run_latency: list[float] = field(default_factory=list)  # one latency per ok run, in run (round) order
    latency: float = math.nan
    latency_p10: float = math.nan
    latency_p90: float = math.nan
    values: dict[str, float] = field(default_factory=dict)  # quality metrics + nfe/flops/peak mem
    errors: list[str] = field(default_factory=list)
    ok_runs: int = 0

    @property
    def ok(self) -> bool:
        return self.ok_runs > 0

    @property
    def key(self) -> tuple[Any, ...]:
        return tuple(self.record.get(f) for f in KEY_FIELDS) + (bool(self.record.get("compile", False)),)

    @property
    def label(self) -> str:
        r = self.record
        return f"{r.get('generator')}/{r.get('sampler')} S={r.get('S')} K={r.get('K')} seed={r.get('seed')}"


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else math.nan


def _natural(text: str) -> list[Any]:
    """Sort key so that round-2 comes before round-10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _pool(point_id: str, recs: list[tuple[dict[str, Any], float, str]]) -> PooledPoint:
    """Pool (record, latency scale, run name) triples of one point."""
    from scalebench.timing import percentile

    ok = [(r, s, run) for r, s, run in recs if r.get("status") == "ok"]
    latest = max((r for r, _, _ in (ok or recs)), key=lambda r: str(r.get("ended_at") or r.get("started_at") or ""))
    p = PooledPoint(point_id=point_id, record=latest, runs=[run for _, _, run in recs], ok_runs=len(ok),
                    errors=[str(r.get("error")) for r, _, _ in recs if r.get("status") != "ok"])
    fallback: dict[str, list[float]] = defaultdict(list)
    values: dict[str, list[float]] = defaultdict(list)
    for r, scale, _ in sorted(ok, key=lambda t: _natural(t[2])):
        per_sample = (r.get("timing") or {}).get("per_sample_s") or []
        run_samples = [float(t) / scale for t in per_sample if _finite(t)]
        p.samples.extend(run_samples)
        cost = r.get("cost") or {}
        if run_samples:
            p.run_latency.append(statistics.median(run_samples))
        elif _finite(cost.get("latency_s")):
            p.run_latency.append(cost["latency_s"] / scale)
        for k in ("latency_s", "latency_p10_s", "latency_p90_s"):
            if _finite(cost.get(k)):
                fallback[k].append(cost[k] / scale)
        for k in (*TOLERANCE_COSTS, *INFO_COSTS):
            if _finite(cost.get(k)):
                values[k].append(float(cost[k]))
        for k, v in (r.get("metrics") or {}).items():
            if _finite(v):
                values[k].append(float(v))
    if p.samples:
        p.latency = statistics.median(p.samples)
        p.latency_p10, p.latency_p90 = percentile(p.samples, 10), percentile(p.samples, 90)
    else:
        p.latency = _mean(fallback["latency_s"])
        p.latency_p10, p.latency_p90 = _mean(fallback["latency_p10_s"]), _mean(fallback["latency_p90_s"])
    p.values = {k: _mean(v) for k, v in values.items()}
    return p


def load_side(paths: Sequence[str | Path], normalize: bool = False) -> dict[str, PooledPoint]:
    """point_id → PooledPoint over every run directory under `paths` (rounds are pooled).

    With `normalize`, each run's latencies are divided by its manifest's `calibration_s`
    before pooling, so runs from different machines (or moments) become comparable.
    """
    grouped: dict[str, list[tuple[dict[str, Any], float, str]]] = defaultdict(list)
    for d in run_dirs(paths):
        scale = 1.0
        if normalize:
            cal = read_manifest(d).get("calibration_s")
            if not _finite(cal) or cal <= 0:
                raise CompareError(f"{d}/manifest.json has no calibration_s; re-run it with this scalebench "
                                   "or drop --normalize")
            scale = float(cal)
        for pid, rec in latest_records(d).items():
            grouped[pid].append((rec, scale, str(d)))
    return {pid: _pool(pid, recs) for pid, recs in grouped.items()}


# ---------------------------------------------------------------------------- matching

@dataclass(frozen=True)
class Unmatched:
    side: Literal["baseline", "candidate"]
    point: str
    point_id: str
    reason: str


@dataclass(frozen=True)
class Match:
    baseline: PooledPoint
    candidate: PooledPoint
    by: Literal["point_id", "settings"]


def match_points(base: dict[str, PooledPoint], cand: dict[str, PooledPoint]
                 ) -> tuple[list[Match], list[Unmatched]]:
    """Pair points by point_id, then by settings (KEY_FIELDS); list the rest with a reason."""
    matches, unmatched = [], []
    for pid in sorted(base.keys() & cand.keys()):
        b, c = base[pid], cand[pid]
        if b.record.get("device") != c.record.get("device"):  # never gate a CPU point against a CUDA one
            why = (f"same point_id but measured on device {b.record.get('device')} in the baseline and "
                   f"{c.record.get('device')} in the candidate; points on different devices are never compared")
            unmatched += [Unmatched("baseline", b.label, pid, why), Unmatched("candidate", c.label, pid, why)]
        else:
            matches.append(Match(b, c, "point_id"))
    rest_b: dict[tuple, list[PooledPoint]] = defaultdict(list)
    rest_c: dict[tuple, list[PooledPoint]] = defaultdict(list)
    for pid in base.keys() - cand.keys():
        rest_b[base[pid].key].append(base[pid])
    for pid in cand.keys() - base.keys():
        rest_c[cand[pid].key].append(cand[pid])

    def newest(ps: list[PooledPoint]) -> PooledPoint:
        return max(ps, key=lambda p: (p.ok, str(p.record.get("ended_at") or "")))

    for key in sorted(rest_b.keys() | rest_c.keys(), key=str):
        bs, cs = rest_b.get(key, []), rest_c.get(key, [])
        if bs and cs:
            b, c = newest(bs), newest(cs)
            matches.append(Match(b, c, "settings"))
            for side, ps, chosen in (("baseline", bs, b), ("candidate", cs, c)):
                unmatched += [Unmatched(side, p.label, p.point_id, "same settings as a matched point but another "
                                        "point_id (other metrics or timing settings); the newest was compared")
                              for p in ps if p is not chosen]
            continue
        side, ps = ("baseline", bs) if bs else ("candidate", cs)
        other, other_side = ("candidate", cand) if side == "baseline" else ("baseline", base)
        reason = (f"its settings match a {other} point already compared by point_id (this one differs in "
                  "metrics or timing settings)" if any(q.key == key for q in other_side.values())
                  else f"no point with these settings in the {other}")
        unmatched += [Unmatched(side, p.label, p.point_id, reason) for p in ps]
    matches.sort(key=lambda m: tuple(str(v) for v in m.baseline.key))
    return matches, unmatched


# ---------------------------------------------------------------------------- decisions

@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    ratio: float
    p_value: float | None = None  # the p-value the decision used (adjusted for multiplicity in compare_runs)
    test: str = ""
    note: str = ""
    p_raw: float | None = None  # before the correction across points


def min_p_value(n1: int, n2: int) -> float:
    """The smallest one-sided p-value an exact Mann-Whitney U test can reach with n1, n2 samples."""
    return 1.0 / math.comb(n1 + n2, n1) if n1 and n2 else 1.0


def _ratio(base: float, cand: float) -> float:
    if base == cand:
        return 1.0
    if base == 0 or not math.isfinite(base):
        return math.inf if cand > 0 else -math.inf if cand < 0 else math.nan
    return cand / base


def paired_t(logs: Sequence[float]) -> tuple[float, float, tuple[float, float]]:
    """One-sided paired t-test on per-round log ratios (df = rounds − 1): (p slower, p faster,
    95 % interval of the ratio). Round i of A and B ran back to back, so each log ratio carries
    that moment's load on both sides and the rounds are the independent units."""
    from scipy.stats import t as student

    n = len(logs)
    mean = statistics.fmean(logs)
    sd = statistics.stdev(logs) if n > 1 else math.nan
    if not sd > 0:  # identical log ratios: no spread to test against
        p_slow = 0.0 if mean > 0 else 1.0
        p_fast = 0.0 if mean < 0 else 1.0
        return p_slow, p_fast, (math.exp(mean), math.exp(mean))
    se = sd / math.sqrt(n)
    tstat = mean / se
    half = float(student.ppf(0.975, n - 1)) * se
    return (float(student.sf(tstat, n - 1)), float(student.cdf(tstat, n - 1)),
            (math.exp(mean - half), math.exp(mean + half)))


@dataclass(frozen=True)
class LatencyTest:
    """The latency evidence of one point before the decision: ratio, one-sided p-values, the test.

    `p_slow`/`p_fast` are None when there is nothing to test (`note` says why); `p_min` is the
    smallest one-sided p the test could give with this data (0 for the t-test), which decides
    whether a slowdown is detectable at all after the correction across points.
    """

    ratio: float
    p_slow: float | None
    p_fast: float | None
    test: str
    note: str = ""
    p_min: float = 1.0
    ci: tuple[float, float] | None = None  # 95 % interval of the ratio (paired t only)
    rounds: int = 0
    samples: tuple[int, int] = (0, 0)

    @property
    def tested(self) -> bool:
        return self.p_slow is not None and self.p_fast is not None


def latency_test(base: Sequence[float], cand: Sequence[float], base_value: float | None = None,
                 cand_value: float | None = None, base_rounds: Sequence[float] = (),
                 cand_rounds: Sequence[float] = ()) -> LatencyTest:
    """Ratio and one-sided p-values (slower, faster) of the candidate's latency against the baseline's.

    With ≥ MIN_ROUNDS paired rounds (`base_rounds`/`cand_rounds`: one latency per run, round i
    of A and B ran back to back) the test is a one-sided paired t-test on the per-round log
    ratios and the ratio is exp(mean log ratio): the rounds, not the raw samples, are the
    independent units (samples of one round share that moment's load). With fewer rounds the
    test is a one-sided Mann-Whitney U on the pooled raw per-sample timings `base`/`cand`
    (asv's rule), whose smallest p is 1/C(n₁+n₂, n₁) (`p_min`).
    """
    b_med = statistics.median(base) if base else base_value
    c_med = statistics.median(cand) if cand else cand_value
    if b_med is None or c_med is None or not (_finite(b_med) and _finite(c_med)):
        return LatencyTest(math.nan, None, None, "none", "no latency on one side")
    ratio = _ratio(b_med, c_med)
    n_rounds = len(base_rounds) if len(base_rounds) == len(cand_rounds) else 0
    paired = n_rounds >= MIN_ROUNDS and all(_finite(x) and x > 0 for x in (*base_rounds, *cand_rounds))
    if paired:
        logs = [math.log(c / b) for b, c in zip(base_rounds, cand_rounds, strict=True)]
        p_slow, p_fast, ci = paired_t(logs)
        return LatencyTest(math.exp(statistics.fmean(logs)), p_slow, p_fast,
                           f"paired t over {n_rounds} rounds (df={n_rounds - 1})", p_min=0.0, ci=ci,
                           rounds=n_rounds, samples=(len(base), len(cand)))
    if not (base and cand):
        return LatencyTest(ratio, None, None, "none", "no raw timing samples on "
                           + ("either side" if not (base or cand) else "one side")
                           + f" and {n_rounds or min(len(base_rounds), len(cand_rounds))} paired round(s)",
                           rounds=n_rounds)
    from scipy.stats import mannwhitneyu

    p_slow = float(mannwhitneyu(cand, base, alternative="greater").pvalue)
    p_fast = float(mannwhitneyu(cand, base, alternative="less").pvalue)
    return LatencyTest(ratio, p_slow, p_fast, f"Mann-Whitney n={len(base)}/{len(cand)}",
                       p_min=min_p_value(len(base), len(cand)), rounds=n_rounds, samples=(len(base), len(cand)))


def reachable(t: LatencyTest, family: int, correction: str, alpha: float) -> str:
    """'' when a slowdown at this point alone could reach a corrected p < alpha, else why not.

    The best case is this point holding the smallest p of its family at the test's floor
    `p_min`; Holm and Benjamini–Hochberg then multiply it by the family size.
    """
    if not t.tested:
        return t.note or "nothing to test"
    best = t.p_min * (family if correction != "none" else 1)
    if best < alpha:
        return ""
    over = (f" × {family} points ({CORRECTION_NAMES[correction]}) = {min(best, 1):.2g}"
            if correction != "none" and family > 1 else "")
    return f"cannot detect a slowdown: {t.test}'s smallest p is {t.p_min:.2g}{over}, not below α = {alpha:g}"


def decide_latency(t: LatencyTest, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA,
                   p_slow: float | None = None, p_fast: float | None = None, adjusted: str = "",
                   reach: str = "") -> Decision:
    """Regression iff ratio > 1 + threshold and the slower-p (adjusted, if given) < alpha; the mirror
    for improvements; "insufficient" when the point cannot be tested or its test cannot reach α
    (`reach`, from `reachable`)."""
    if not math.isfinite(t.ratio) and not t.tested:
        return Decision("info", t.ratio, test=t.test, note=t.note)
    if not t.tested or reach:
        return Decision("insufficient", t.ratio, None, t.test, reach or t.note)
    ps = t.p_slow if p_slow is None else p_slow
    pf = t.p_fast if p_fast is None else p_fast
    assert ps is not None and pf is not None
    ratio = t.ratio
    test = t.test + (f", {adjusted}" if adjusted else "")
    slower, faster = ratio > 1 + threshold, ratio < 1 / (1 + threshold)
    p, raw = (ps, t.p_slow) if ratio >= 1 else (pf, t.p_fast)
    sig_slow, sig_fast = ps < alpha, pf < alpha
    after = f" after the correction (raw p={raw:.2g})" if adjusted and raw is not None and raw < alpha else ""
    if slower:
        if sig_slow:
            return Decision("regression", ratio, p, test, p_raw=raw)
        return Decision("ok", ratio, p, test, f"slower by {ratio - 1:.1%} but not significant{after}", raw)
    if faster:
        if sig_fast:
            return Decision("improvement", ratio, p, test, p_raw=raw)
        return Decision("ok", ratio, p, test, f"faster by {1 - ratio:.1%} but not significant{after}", raw)
    note = f"significant but within ±{_pct(threshold)}" if (sig_slow and ratio > 1) or (sig_fast and ratio < 1) else ""
    return Decision("ok", ratio, p, test, note, raw)


def latency_decision(base: Sequence[float], cand: Sequence[float], threshold: float = DEFAULT_THRESHOLD,
                     alpha: float = DEFAULT_ALPHA, base_value: float | None = None, cand_value: float | None = None,
                     base_runs: Sequence[float] = (), cand_runs: Sequence[float] = ()) -> Decision:
    """One point on its own (no correction across points): `latency_test` then `decide_latency`."""
    t = latency_test(base, cand, base_value, cand_value, base_runs, cand_runs)
    return decide_latency(t, threshold, alpha, reach=reachable(t, 1, "none", alpha))


CORRECTIONS = ("holm", "bh", "none")
DEFAULT_CORRECTION = "holm"


def adjust_p_values(ps: Sequence[float], method: str = DEFAULT_CORRECTION) -> list[float]:
    """Multiplicity-adjusted p-values: Holm–Bonferroni ("holm", family-wise error ≤ α under any
    dependence), Benjamini–Hochberg ("bh", false discovery rate ≤ α for independent or positively
    dependent tests) or "none". Reject where the adjusted p < α."""
    if method not in CORRECTIONS:
        raise CompareError(f"--correction {method!r}; use one of {', '.join(CORRECTIONS)}")
    m = len(ps)
    if method == "none" or m <= 1:
        return [float(p) for p in ps]
    order = sorted(range(m), key=lambda i: ps[i])
    adj = [0.0] * m
    if method == "holm":
        running = 0.0
        for rank, i in enumerate(order):  # step down: (m − rank)·p, kept monotone
            running = max(running, min(1.0, (m - rank) * ps[i]))
            adj[i] = running
    else:
        running = 1.0
        for rank in range(m - 1, -1, -1):  # step up: m/(rank+1)·p, kept monotone from the top
            i = order[rank]
            running = min(running, min(1.0, m / (rank + 1) * ps[i]))
            adj[i] = running
    return adj


def metric_decision(metric: str, base: float, cand: float, tolerance: float | None = None) -> Decision:
    """Quality or deterministic cost: worse in the declared direction by more than rel_tolerance."""
    from scalebench.metrics import METRICS

    spec = METRICS.get(metric)
    better = spec.better if spec else "lower"
    tol = tolerance if tolerance is not None else (spec.rel_tolerance if spec else 0.05)
    if not (_finite(base) and _finite(cand)):
        return Decision("info", math.nan, test="none", note="not finite on one side")
    ratio = _ratio(base, cand)
    if base == cand:
        return Decision("ok", 1.0, test=f"±{_pct(tol)}")
    rel = (cand - base) / abs(base) if base != 0 else math.copysign(math.inf, cand - base)
    worse = rel > tol if better == "lower" else rel < -tol
    improved = rel < -tol if better == "lower" else rel > tol
    verdict: Verdict = "regression" if worse else "improvement" if improved else "ok"
    return Decision(verdict, ratio, None, f"±{_pct(tol)} ({better} is better)")


# ---------------------------------------------------------------------------- the report

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
    rounds: int = 0  # paired rounds the latency test used (0: raw samples)
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
        """Latency rows with too few raw samples to test ("not enough samples"): not decided."""
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
        rounds = min((r.rounds for r in few), default=0)
        n = min((min(r.samples) for r in few), default=0)
        m = max(self.family, 1)
        need = next(k for k in range(1, 64) if min_p_value(k, k) * (m if self.correction != "none" else 1) < self.alpha)
        what = f"{rounds} paired round(s) and {n} raw samples per side" if rounds else f"{n} raw samples per side"
        return (f"cannot detect any slowdown with {what} over {m} point(s) ({len(few)} not testable): use ≥ "
                f"{MIN_ROUNDS} paired rounds (scalebench ab --rounds, or -b/-c runs in pairs) or ≥ {need} raw "
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


_MD_MARKS = {"regression": "❌ regression", "failed": "❌ failed", "improvement": "✅ improvement", "ok": "ok",
             "info": "info", "insufficient": "⚠️ cannot test"}
CORRECTION_NAMES = {"holm": "Holm–Bonferroni", "bh": "Benjamini–Hochberg", "none": "no correction"}


def describe_correction(correction: str, family: int, alpha: float) -> str:
    """One phrase: which error rate the gate controls across how many latency points."""
    if correction == "none" or family <= 1:
        return f"α = {alpha:g} per point" + (f", {family} latency points tested, no correction" if family > 1 else "")
    rate = "family-wise error" if correction == "holm" else "false discovery rate"
    return f"{CORRECTION_NAMES[correction]} over {family} latency points ({rate} ≤ {alpha:g})"


def to_markdown(report: CompareReport) -> str:
    """A Markdown summary (e.g. for $GITHUB_STEP_SUMMARY): verdict, gated rows, unmatched points."""
    unit = "×cal" if report.normalize else "ms"
    scale = 1.0 if report.normalize else 1e3

    def fmt(metric: str, v: float | None) -> str:
        if v is None:
            return "—"
        return f"{v * scale:.4g} {unit}" if metric == "latency_s" else f"{v:.4g}"

    head = ("❌ regression" if report.regressed else "⚠️ cannot detect a slowdown" if report.undetectable
            else "✅ no regression")
    lines = [f"### scalebench speed gate: {head}", "",
             f"{report.matched} points; threshold {report.thresholds.describe()}, "
             f"{describe_correction(report.correction, report.family, report.alpha)}"
             + (f"; {report.undetectable}" if report.undetectable else "")
             + (", latencies normalized by calibration" if report.normalize else ""), "",
             "| point | metric | baseline | candidate | ratio | p (adj.) | verdict | note |",
             "|---|---|---:|---:|---:|---:|---|---|"]
    for r in report.rows:
        if r.metric in (*TOLERANCE_COSTS, *INFO_COSTS) and r.verdict in ("ok", "info"):
            continue
        ratio = "—" if r.ratio is None else f"{r.ratio:.3f}"
        p = "—" if r.p_value is None else f"{r.p_value:.2g}"
        lines.append(f"| {r.point} | {r.metric} | {fmt(r.metric, r.baseline)} | {fmt(r.metric, r.candidate)} | "
                     f"{ratio} | {p} | {_MD_MARKS[r.verdict]} | {r.note} |")
    if report.unmatched:
        lines += ["", "Unmatched points (not compared):", ""]
        lines += [f"- {u.side}: {u.point} (`{u.point_id}`): {u.reason}" for u in report.unmatched]
    return "\n".join(lines) + "\n"


def _row(m: Match, metric: str, b: float | None, c: float | None, d: Decision, threshold: float | None) -> Row:
    r = m.baseline.record
    def clean(v: float | None) -> float | None:
        return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v

    return Row(point=m.baseline.label, generator=str(r.get("generator")), sampler=str(r.get("sampler")),
               S=r.get("S"), K=r.get("K"), seed=r.get("seed"), metric=metric, baseline=clean(b),
               candidate=clean(c), ratio=clean(d.ratio), p_value=d.p_value, test=d.test, threshold=threshold,
               verdict=d.verdict, note=d.note, matched_by=m.by, baseline_id=m.baseline.point_id,
               candidate_id=m.candidate.point_id, device=r.get("device"),
               p_raw=d.p_raw if d.p_raw is not None else d.p_value)


def _is_floor(metric: str) -> bool:
    from scalebench.metrics import METRICS

    return any(metric.endswith(s) and metric[: -len(s)] in METRICS for s in FLOOR_SUFFIXES)


def compare_matched(m: Match, thresholds: Thresholds, alpha: float) -> list[Row]:
    """The rows of one matched point on its own (latency not corrected across points)."""
    rows, test, thr = _matched_rows(m, thresholds, alpha)
    if test is not None:
        rows[0] = _latency_row(m, rows[0], decide_latency(test, thr, alpha, reach=reachable(test, 1, "none", alpha)),
                               test)
    return rows


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
    thr = thresholds.for_generator(str(b.record.get("generator")))
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
        if _is_floor(k):
            rows.append(_row(m, k, b.values[k], c.values[k], Decision(
                "info", _ratio(b.values[k], c.values[k]), note="data floor: shown, not gated"), None))
            continue
        d = metric_decision(k, b.values[k], c.values[k])
        rows.append(_row(m, k, b.values[k], c.values[k], d, METRICS[k].rel_tolerance if k in METRICS else None))
    for k in INFO_COSTS:
        if k in b.values and k in c.values:
            rows.append(_row(m, k, b.values[k], c.values[k],
                             Decision("info", _ratio(b.values[k], c.values[k]), note="not gated"), None))
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
            reach = reachable(test, len(tested), correction, alpha)
            mrows[0] = _latency_row(m, mrows[0], decide_latency(test, thr, alpha, ps, pf, label if i in adjusted else "",
                                                                reach), test)
        rows += mrows
    return CompareReport(baseline=[str(p) for p in b_paths], candidate=[str(p) for p in c_paths],
                         thresholds=thresholds, alpha=alpha, normalize=normalize, rows=rows,
                         unmatched=unmatched, matched=len(matches), correction=correction, family=len(tested))
