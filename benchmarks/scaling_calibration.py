"""Scaling-law fits and S × K allocations on synthetic surfaces of known truth, through the real code.

Every curve goes through `scalebench.scaling.fit.fit_curve`, every surface through
`scalebench.scaling.allocation.allocate`: the fitting code a table, the docs and the report use.
The noise is the verdict calibration's (benchmarks/verdict_calibration.py), modelled on the committed
quick run: per point a multiplicative log-normal noise of sd 0.06·√(500/n), half of its variance
shared by the points of one replicate (a sampling seed is shared along the axis), plus, near the data
floor, the floor's own additive spread; the floor and its sd at each n are the committed records'
(`fid_floor`, `fid_floor_sd` at n = 250, 500, 1000). The grids, n and replicates are the specs':
the quick and full specs (quick.toml, full.toml) run 3 seeds; the committed quick baseline ran 2,
so 2 replicates are measured on the quick grids too.

1. **Exponents** — truth: FID = floor + c + A·(C/C₀)^(−α), A = 100, α ∈ {0.5, 1, 2.5}, c ∈ {0, 10}
   (reaches the floor / flattens above it). Per setting: the share fitted as a power law, the false
   "no power law" rate, and the coverage of the 95 % intervals of α (jackknife-t, the shipped
   method; the percentile bootstrap over replicates beside it) and of the compute where the curve
   enters the floor band.
2. **No power law** — truths that are not power laws: turns (improves, then worsens: rolling's S),
   steepens (a sigmoid in log C: gpt's S), flat (consistency's K), at the floor. Per truth the
   share of each outcome.
3. **Allocation** — S × K surfaces with known optima on the specs' both-axes grids and compute
   formulas: the measured optimum per budget recovered, the spend decision (right / wrong way /
   undecided), and the smooth fit's optimum within a factor 2 of the truth's, with the coverage of
   its intervals.

    python benchmarks/scaling_calibration.py                      # the committed run (~4 min on 2 cores)
    python benchmarks/scaling_calibration.py --curves 20 --surfaces 10 --out /tmp/cal   # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from scalebench.scaling.allocation import BOTH, EITHER, ON_K, ON_S, Surface, allocate, decide_spend
from scalebench.scaling.fit import FLOOR_Z, NO_LAW, NOT_FITTED, POWER_LAW, Curve, fit_curve

FLOORS = {250: (2.0026, 0.6064), 500: (1.1537, 0.4607), 1000: (0.8259, 0.2940)}  # fid_floor, fid_floor_sd (records)
LOG_SD_500 = 0.06
# (spec, family, axis values = NFE, n) as in the quick and full specs (quick.toml, full.toml)
GRIDS = [
    ("quick", "diffusion K", (1, 2, 5, 10, 20), 500),
    ("quick", "gpt S", (1, 4, 16, 64), 500),
    ("quick", "pixelcnn S", (1, 4, 16, 64), 250),
    ("quick", "mtp S", (4, 16, 64), 500),
    ("quick", "imm K", (1, 2, 4, 8), 500),
    ("full", "diffusion K", (1, 2, 5, 10, 20, 50, 100), 1000),
    ("full", "mtp S", (4, 8, 16, 32, 64), 1000),
    ("full", "maskgit S", (1, 2, 4, 8, 16, 64), 1000),
    ("full", "ebm K", (1, 5, 10, 20, 50, 100, 200, 500), 1000),
]
ALPHAS, IRREDUCIBLE, AMPLITUDE = (0.5, 1.0, 2.5), (0.0, 10.0), 100.0


def noisy(rng: np.random.Generator, truth: np.ndarray, replicates: int, n: int) -> np.ndarray:
    """replicates × points of FID around `truth` with the quick run's noise at n."""
    floor, floor_sd = FLOORS[n]
    log_sd = LOG_SD_500 * math.sqrt(500 / n)
    shared = rng.normal(0, log_sd / math.sqrt(2), (replicates, 1))
    v = truth * np.exp(shared + rng.normal(0, log_sd / math.sqrt(2), (replicates, truth.size)))
    v = v + rng.normal(0, floor_sd, v.shape) * np.minimum(1.0, floor / np.maximum(truth, floor))
    return np.maximum(1e-3, v)


def entry(alpha: float, c: float, c0: float, floor_sd: float) -> float:
    """The true compute where floor + c + A(C/C₀)^−α falls to the band's top (inf: never)."""
    room = FLOOR_Z * floor_sd - c
    return c0 * (AMPLITUDE / room) ** (1 / alpha) if room > 0 else math.inf


def exponents(rng: np.random.Generator, curves: int, boot_curves: int) -> list[dict]:
    out = []
    for spec, family, grid, n in GRIDS:
        floor, floor_sd = FLOORS[n]
        C = np.asarray(grid, dtype=float)
        for reps in ((2, 3) if spec == "quick" else (3,)):
            for alpha in ALPHAS:
                for c in IRREDUCIBLE:
                    truth = floor + c + AMPLITUDE * (C / C[0]) ** (-alpha)
                    true_entry = entry(alpha, c, C[0], floor_sd)
                    rec = dict(part="exponent", spec=spec, family=family, grid=list(grid), n=n, replicates=reps,
                               alpha=alpha, irreducible=c, curves=curves, outcomes=Counter(), covered=0, intervals=0,
                               boot_covered=0, boot_intervals=0, entry_covered=0, entry_intervals=0, widths=[])
                    for i in range(curves):
                        curve = Curve(C, noisy(rng, truth, reps, n), "lower", floor, floor_sd)
                        fit = fit_curve(curve)
                        rec["outcomes"][fit.outcome] += 1
                        if fit.outcome == POWER_LAW and math.isfinite(fit.alpha_lo):
                            rec["intervals"] += 1
                            rec["covered"] += int(fit.alpha_lo <= alpha <= fit.alpha_hi)
                            rec["widths"].append(fit.alpha_hi / fit.alpha_lo)
                            if math.isfinite(fit.compute_at_floor_lo) and math.isfinite(true_entry):
                                rec["entry_intervals"] += 1
                                rec["entry_covered"] += int(fit.compute_at_floor_lo <= true_entry
                                                            <= fit.compute_at_floor_hi)
                            if i < boot_curves:
                                b = fit_curve(curve, interval="bootstrap")
                                if math.isfinite(b.alpha_lo):
                                    rec["boot_intervals"] += 1
                                    rec["boot_covered"] += int(b.alpha_lo <= alpha <= b.alpha_hi)
                    rec["median_width"] = float(np.median(rec.pop("widths"))) if rec["intervals"] else math.nan
                    rec["outcomes"] = dict(rec["outcomes"])
                    out.append(rec)
    return out


def _sigmoid(C: np.ndarray, floor: float) -> np.ndarray:
    mid = math.exp((math.log(C[0]) + math.log(C[-1])) / 2)
    return floor + 130 / (1 + (C / mid) ** 2.5)


SHAPES = {  # truths that are not power laws: name → FID(C, floor)
    "turns": lambda C, f: f + 60 * (C / C[0]) ** -1.5 + 12 * (C / C[-1]),  # improves, then worsens
    "steepens": _sigmoid,  # flat, then falls ever faster (gpt's S)
    "flat": lambda C, f: np.full(C.shape, 20.0),
    "at floor": lambda C, f: np.full(C.shape, f),
}
SHAPE_EXPECTED = {"turns": (NO_LAW,), "steepens": (NO_LAW,), "flat": (NOT_FITTED,), "at floor": (NOT_FITTED,)}


def shapes(rng: np.random.Generator, curves: int) -> list[dict]:
    out = []
    for spec, family, grid, n in GRIDS:
        if len(grid) < 4:
            continue
        floor, floor_sd = FLOORS[n]
        C = np.asarray(grid, dtype=float)
        for name, fn in SHAPES.items():
            truth = fn(C, floor)
            counts = Counter(fit_curve(Curve(C, noisy(rng, truth, 3, n), "lower", floor, floor_sd)).outcome
                             for _ in range(curves))
            out.append(dict(part="shape", spec=spec, family=family, grid=list(grid), n=n, replicates=3, truth=name,
                            curves=curves, outcomes=dict(counts)))
    return out


# Both-axes grids and compute formulas of the specs (NFE per sample).
SURFACE_GRIDS = {
    "mar full": ((1, 2, 4, 8, 16, 64), (1, 2, 5, 10, 25, 50), lambda S, K: S * (K + 1), 1000),
    "mar quick": ((1, 4), (1, 25), lambda S, K: S * (K + 1), 250),
    "ar_diffusion full": ((1, 2, 4, 8), (1, 2, 5, 10, 20), lambda S, K: K + (S - 1) * np.ceil(K / 2), 1000),
    "blockwise full": ((4, 8, 16, 32, 64), (1, 2, 4, 8, 16), lambda S, K: S * K, 1000),
}
TRUTHS = {  # name → FID(S, K, floor)
    "K first, then S": lambda S, K, f: f + 30 * S ** -0.7 + 90 * K ** -1.5,
    "S hurts": lambda S, K, f: f + 110 * K ** -2.0 + 3 * np.log(S),
    "S first, then K": lambda S, K, f: f + 90 * (S / S.min()) ** -1.5 + 30 * K ** -0.7,
    "tie": lambda S, K, f: f + 50 * ((S / S.min()) ** -1.0 + K ** -1.0),
}


def _truth_choice(S: np.ndarray, K: np.ndarray, C: np.ndarray, y: np.ndarray, b: float) -> str:
    """The noiseless spend at budget b, by the rule's own definitions."""
    ok = np.flatnonzero(C <= b * (1 + 1e-9))
    j = int(ok[np.argmin(y[ok])])
    s_min, k_min = S.min(), K.min()
    on_s, on_k = ok[K[ok] == k_min], ok[S[ok] == s_min]
    zs = y[on_s].min(keepdims=True) if len(on_s) else None
    zk = y[on_k].min(keepdims=True) if len(on_k) else None
    _, lean, _ = decide_spend(zs, zk, y[j:j + 1], bool(S[j] > s_min and K[j] > k_min), False)
    return lean


def allocations(rng: np.random.Generator, surfaces: int) -> list[dict]:
    out = []
    for gname, (s_vals, k_vals, cost, n) in SURFACE_GRIDS.items():
        floor = FLOORS[n][0] if n in FLOORS else FLOORS[250][0]
        SS, KK = np.meshgrid(np.asarray(s_vals, float), np.asarray(k_vals, float), indexing="ij")
        S, K = SS.ravel(), KK.ravel()
        C = cost(S, K).astype(float)
        # the smooth truth: the same surface on the smooth fit's dense grid (continuous S, K; K/2 for ⌈K/2⌉)
        du, dv = np.meshgrid(np.linspace(np.log(S.min()), np.log(S.max()), 81),
                             np.linspace(np.log(K.min()), np.log(K.max()), 81), indexing="ij")
        dS, dK = np.exp(du.ravel()), np.exp(dv.ravel())
        dC = (dK + (dS - 1) * dK / 2) if gname.startswith("ar_diffusion") else cost(dS, dK)
        for tname, fn in TRUTHS.items():
            if tname == "tie" and not gname.startswith("blockwise"):
                continue  # a tie needs S and K symmetric in values and cost: blockwise's S × K grid
            y = fn(S, K, floor)
            dy = fn(dS, dK, floor)
            for reps in (2, 3):
                rec = dict(part="allocation", grid=gname, truth=tname, n=n, replicates=reps, surfaces=surfaces,
                           budgets=0, optimum=0, regret=[], spend=Counter(), smooth_within_2=0,
                           smooth_intervals=0, smooth_covered=0)
                for _ in range(surfaces):
                    q = noisy(rng, y, reps, n if n in FLOORS else 250)
                    for ch in allocate(Surface(S, K, C, q, "lower")):
                        lean = _truth_choice(S, K, C, y, ch.budget)
                        rec["budgets"] += 1
                        chosen = int(np.flatnonzero((S == ch.S) & (K == ch.K))[0])
                        best = float(y[C <= ch.budget * (1 + 1e-9)].min())
                        rec["optimum"] += int(y[chosen] <= best * (1 + 1e-9))  # truly optimal (ties count)
                        rec["regret"].append(y[chosen] / best - 1)
                        verdict = ("right" if ch.spend == lean else "undecided" if ch.spend == EITHER
                                   else "partial" if BOTH in (ch.spend, lean) else "wrong way")
                        rec["spend"][f"{lean} → {verdict}"] += 1
                        ok = dC <= ch.budget * (1 + 1e-9)
                        if ok.any() and math.isfinite(ch.S_fit):
                            j = int(np.flatnonzero(ok)[np.argmin(dy[ok])])
                            rec["smooth_within_2"] += int(abs(math.log2(ch.S_fit / dS[j])) <= 1
                                                          and abs(math.log2(ch.K_fit / dK[j])) <= 1)
                            if math.isfinite(ch.S_fit_lo) and math.isfinite(ch.K_fit_lo):
                                rec["smooth_intervals"] += 1
                                rec["smooth_covered"] += int(ch.S_fit_lo * 0.999 <= dS[j] <= ch.S_fit_hi * 1.001
                                                             and ch.K_fit_lo * 0.999 <= dK[j] <= ch.K_fit_hi * 1.001)
                rec["spend"] = dict(rec["spend"])
                rec["regret_mean"] = float(np.mean(rec.pop("regret"))) if rec["budgets"] else math.nan
                out.append(rec)
    return out


def _pct(k: int, n: int) -> str:
    return f"{k / n:.0%}" if n else "—"


def markdown(records: list[dict]) -> str:
    lines = ["### Exponents: coverage of the 95 % intervals of α (truth: a power law)", "",
             "Per row: 3 exponents × 2 irreducible terms × the curves per setting. *fitted*: outcome \"power law\"; "
             "*false no-law*: \"no power law\" on a true power law; *coverage*: intervals that contain the true α "
             "(jackknife-t, shipped); *bootstrap*: the percentile bootstrap over replicates on the first curves of "
             "each setting; *entry*: intervals of the compute where the fit enters the floor band that contain the "
             "true one; *width*: median hi/lo of the α interval.", "",
             "| spec | family (NFE values) | n | replicates | curves | fitted | false no-law | coverage | bootstrap | "
             "entry | width |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        if r["part"] == "exponent":
            groups[(r["spec"], r["family"], tuple(r["grid"]), r["n"], r["replicates"])].append(r)
    tot: dict[int, Counter] = defaultdict(Counter)
    for (spec, family, grid, n, reps), rs in groups.items():
        s = Counter()
        for r in rs:
            for k in ("curves", "covered", "intervals", "boot_covered", "boot_intervals", "entry_covered",
                      "entry_intervals"):
                s[k] += r[k]
            s["fitted"] += r["outcomes"].get(POWER_LAW, 0)
            s["nolaw"] += r["outcomes"].get(NO_LAW, 0)
        tot[reps] += s
        width = float(np.median([r["median_width"] for r in rs if math.isfinite(r["median_width"])]))
        lines.append(f"| {spec} | {family} ({', '.join(map(str, grid))}) | {n} | {reps} | {s['curves']} | "
                     f"{_pct(s['fitted'], s['curves'])} | {_pct(s['nolaw'], s['curves'])} | "
                     f"{_pct(s['covered'], s['intervals'])} | {_pct(s['boot_covered'], s['boot_intervals'])} | "
                     f"{_pct(s['entry_covered'], s['entry_intervals'])} | {width:.2f} |")
    for reps, s in sorted(tot.items()):
        lines.append(f"| all | all | | {reps} | {s['curves']} | {_pct(s['fitted'], s['curves'])} | "
                     f"{_pct(s['nolaw'], s['curves'])} | **{_pct(s['covered'], s['intervals'])}** | "
                     f"{_pct(s['boot_covered'], s['boot_intervals'])} | {_pct(s['entry_covered'], s['entry_intervals'])} | |")
    by_alpha: dict[tuple, Counter] = defaultdict(Counter)
    for r in records:
        if r["part"] == "exponent":
            by_alpha[(r["alpha"], r["irreducible"])].update(covered=r["covered"], intervals=r["intervals"])
    lines += ["", "Coverage by truth (all grids and replicate counts): " + "; ".join(
        f"α {a:g}, c {c:g}: {_pct(s['covered'], s['intervals'])}" for (a, c), s in sorted(by_alpha.items())), ""]
    lines += ["### No power law: outcomes on truths that are not power laws (3 replicates)", "",
              "| spec | family | truth | curves | power law | no power law | not fitted | expected |",
              "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in records:
        if r["part"] == "shape":
            o, n_ = r["outcomes"], r["curves"]
            exp = sum(o.get(x, 0) for x in SHAPE_EXPECTED[r["truth"]])
            lines.append(f"| {r['spec']} | {r['family']} | {r['truth']} | {n_} | {_pct(o.get(POWER_LAW, 0), n_)} | "
                         f"{_pct(o.get(NO_LAW, 0), n_)} | {_pct(o.get(NOT_FITTED, 0), n_)} | {_pct(exp, n_)} |")
    lines += ["", "### Allocation: the known optimum per budget", "",
              "*optimum*: the measured best point at a budget is truly the best measured point (ties count); *regret*: "
              "the mean excess of its true FID over the best's; *spend*: the "
              "decision against the truth's (noiseless) one — right / undecided (\"either\") / partial (\"S and K\" "
              "against \"S\" or \"K\", either way round) / wrong way (S for K, K for S, or S or K on a tie); "
              "*smooth ≤ 2×*: the smooth fit's optimal S and K both within a factor 2 of the true surface's; "
              "*smooth coverage*: its jackknife intervals contain the true optimum.", "",
              "| grid | truth | replicates | budgets | optimum | regret | spend right | undecided | partial | "
              "wrong way | smooth ≤ 2× | smooth coverage |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        if r["part"] == "allocation":
            sp = r["spend"]
            right = sum(v for k, v in sp.items() if k.endswith("→ right"))
            und = sum(v for k, v in sp.items() if k.endswith("→ undecided"))
            wrong = sum(v for k, v in sp.items() if k.endswith("→ wrong way"))
            part = sum(v for k, v in sp.items() if k.endswith("→ partial"))
            lines.append(f"| {r['grid']} | {r['truth']} | {r['replicates']} | {r['budgets']} | "
                         f"{_pct(r['optimum'], r['budgets'])} | {r['regret_mean']:.1%} | {_pct(right, r['budgets'])} | "
                         f"{_pct(und, r['budgets'])} | {_pct(part, r['budgets'])} | {_pct(wrong, r['budgets'])} | "
                         f"{_pct(r['smooth_within_2'], r['budgets'])} | "
                         f"{_pct(r['smooth_covered'], r['smooth_intervals'])} |")
    truths = sorted({k.split(' → ')[0] for r in records if r['part'] == 'allocation' for k in r['spend']})
    lines += ["", "Truth's spend per budget across the surfaces: " + ", ".join(
        f"{t}: {sum(v for r in records if r['part'] == 'allocation' for k, v in r['spend'].items() if k.startswith(t + ' →'))}"
        for t in truths) + f" budgets ({BOTH}, {ON_S}, {ON_K}, {EITHER} as in scalebench/scaling/allocation.py)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--curves", type=int, default=150, help="synthetic curves per exponent setting")
    ap.add_argument("--boot-curves", type=int, default=25, help="of those, how many also get the bootstrap interval")
    ap.add_argument("--shape-curves", type=int, default=100)
    ap.add_argument("--surfaces", type=int, default=60, help="synthetic S × K surfaces per setting")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/scaling-calibration", help="folder for records.jsonl and table.md")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    records = exponents(rng, args.curves, args.boot_curves)
    t1 = time.perf_counter()
    records += shapes(rng, args.shape_curves)
    t2 = time.perf_counter()
    records += allocations(rng, args.surfaces)
    t3 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "records.jsonl", "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    table = markdown(records)
    (out / "table.md").write_text(table, encoding="utf-8")
    print(table)
    print(f"exponents {t1 - t0:.0f} s, shapes {t2 - t1:.0f} s, allocations {t3 - t2:.0f} s; wrote {out}/records.jsonl, "
          f"{out}/table.md")
    cov = [r for r in records if r["part"] == "exponent"]
    covered, total = sum(r["covered"] for r in cov), sum(r["intervals"] for r in cov)
    print(f"coverage of the 95 % intervals of α over all settings: {covered}/{total} = {covered / max(total, 1):.1%} "
          "(must be ≥ 90 %)")
    return 0 if covered >= 0.9 * total else 1


if __name__ == "__main__":
    sys.exit(main())
