"""Scaling laws of inference compute (scalebench/scaling, issue 27): fits, the "no power law" outcome,
S × K allocation, the cross-family frontier, the table's α columns, the figures and the generated doc."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from scalebench.scaling.allocation import BOTH, ON_K, ON_S, UNTESTED, Surface, allocate, budgets
from scalebench.scaling.fit import NO_LAW, NOT_FITTED, POWER_LAW, Curve, fit_curve
from scalebench.scaling.frontier import frontier_points, leaders

FLOOR, FLOOR_SD = 0.83, 0.29  # fid_floor, fid_floor_sd at n = 1000 in the committed records
GRID = np.array([1, 2, 5, 10, 20, 50, 100], dtype=float)


def noisy(rng: np.random.Generator, truth: np.ndarray, replicates: int, rel: float = 0.03) -> np.ndarray:
    """The calibration's noise: relative per point (half shared by a replicate) + the floor's spread near it."""
    shared = rng.normal(0, rel / math.sqrt(2), (replicates, 1))
    v = truth * np.exp(shared + rng.normal(0, rel / math.sqrt(2), (replicates, truth.size)))
    return v + rng.normal(0, FLOOR_SD, v.shape) * np.minimum(1.0, FLOOR / np.maximum(truth, FLOOR))


@pytest.mark.parametrize(("alpha", "c"), [(0.5, 0.0), (1.5, 0.0), (0.7, 10.0)])
def test_fit_recovers_alpha_and_the_irreducible_term_of_a_noiseless_curve(alpha: float, c: float) -> None:
    y = FLOOR + c + 100 * GRID ** -alpha
    fit = fit_curve(Curve(GRID, np.vstack([y, y, y]), "lower", FLOOR, FLOOR_SD))
    assert fit.outcome == POWER_LAW
    assert fit.alpha == pytest.approx(alpha, rel=2e-3)
    assert fit.irreducible == pytest.approx(c, abs=1e-2)
    assert np.allclose(fit.predict(GRID), y, rtol=1e-3)
    room = 2 * FLOOR_SD - c  # the band's top is floor + 2 sd
    expected = (100 / room) ** (1 / alpha) if room > 0 else math.inf
    assert fit.compute_at_floor == pytest.approx(expected, rel=1e-2)


def test_a_higher_is_better_metric_is_fitted_the_other_way_up() -> None:
    y = 0.9 - 0.8 * GRID ** -1.0  # recall-like: rises to 0.9
    fit = fit_curve(Curve(GRID, np.vstack([y, y * 1.01, y * 0.99]), "higher", 0.9, 0.01))
    assert fit.outcome == POWER_LAW and fit.alpha == pytest.approx(1.0, rel=0.05)
    assert fit.asymptote == pytest.approx(0.9, abs=0.01)


def test_the_interval_covers_the_true_alpha_on_noisy_curves() -> None:
    rng = np.random.default_rng(7)
    covered = fitted = 0
    for _ in range(40):
        fit = fit_curve(Curve(GRID, noisy(rng, FLOOR + 100 * GRID ** -1.2, 3), "lower", FLOOR, FLOOR_SD))
        if fit.outcome == POWER_LAW:
            fitted += 1
            covered += fit.alpha_lo <= 1.2 <= fit.alpha_hi
            assert fit.alpha_lo < fit.alpha < fit.alpha_hi
    assert fitted >= 36 and covered / fitted >= 0.85  # the calibration measures 94 % over 8100 curves


def test_the_bootstrap_interval_is_offered_for_comparison() -> None:
    rng = np.random.default_rng(1)
    q = noisy(rng, FLOOR + 100 * GRID ** -1.0, 3)
    jack, boot = (fit_curve(Curve(GRID, q, "lower", FLOOR, FLOOR_SD), interval=m) for m in ("jackknife", "bootstrap"))
    assert jack.alpha == boot.alpha and math.isfinite(boot.alpha_lo)
    assert boot.alpha_hi / boot.alpha_lo < jack.alpha_hi / jack.alpha_lo  # narrower: why it under-covers


def test_no_power_law_fires_on_a_curve_that_turns_or_steepens() -> None:
    rng = np.random.default_rng(3)
    turns = FLOOR + 60 * GRID ** -1.5 + 12 * GRID / GRID[-1]
    fit = fit_curve(Curve(GRID, noisy(rng, turns, 3), "lower", FLOOR, FLOOR_SD))
    assert fit.outcome == NO_LAW and fit.reason.startswith("turns") and not fit.has_alpha
    steep = FLOOR + 130 / (1 + (GRID / 10) ** 2.5)
    fit = fit_curve(Curve(GRID, noisy(rng, steep, 3), "lower", FLOOR, FLOOR_SD))
    assert fit.outcome == NO_LAW and fit.reason.startswith("steepens")
    worse = FLOOR + 5 * GRID ** 0.5
    fit = fit_curve(Curve(GRID, noisy(rng, worse, 3), "lower", FLOOR, FLOOR_SD))
    assert fit.outcome == NO_LAW and fit.reason.startswith("worsens")


def test_flat_curves_few_points_and_one_replicate_are_said_so() -> None:
    rng = np.random.default_rng(4)
    flat = fit_curve(Curve(GRID, noisy(rng, np.full(GRID.size, 20.0), 3), "lower", FLOOR, FLOOR_SD))
    assert flat.outcome == NOT_FITTED and "no change" in flat.reason
    at_floor = fit_curve(Curve(GRID, np.full((3, GRID.size), FLOOR), "lower", FLOOR, FLOOR_SD))
    assert at_floor.outcome == NOT_FITTED and "floor band" in at_floor.reason
    two = fit_curve(Curve(GRID[:2], np.ones((3, 2)) * [50.0, 20.0], "lower", FLOOR, FLOOR_SD))
    assert two.outcome == NOT_FITTED and "needs 3" in two.reason
    one = fit_curve(Curve(GRID, (FLOOR + 100 * GRID ** -1.0)[None, :], "lower", FLOOR, FLOOR_SD))
    assert one.outcome == "untested" and one.alpha == pytest.approx(1.0, rel=0.01) and math.isnan(one.alpha_lo)


def _surface(fn, s_vals, k_vals, cost, reps: int, rng: np.random.Generator, rel: float = 0.02) -> Surface:
    SS, KK = np.meshgrid(np.asarray(s_vals, float), np.asarray(k_vals, float), indexing="ij")
    S, K = SS.ravel(), KK.ravel()
    y = fn(S, K)
    return Surface(S, K, cost(S, K), noisy(rng, y, reps, rel), "lower")


def test_allocation_recovers_a_known_optimum_per_budget() -> None:
    rng = np.random.default_rng(5)

    def truth(S, K):
        return FLOOR + 30 * S ** -0.7 + 90 * K ** -1.5

    def cost(S, K):
        return S * (K + 1)

    s = _surface(truth, (1, 2, 4, 8), (1, 2, 5, 10), cost, 3, rng)
    choices = allocate(s)
    assert [c.budget for c in choices] == list(budgets(s.compute)[[len(np.flatnonzero(s.compute <= b)) >= 2
                                                                    for b in budgets(s.compute)]])
    y = truth(s.S, s.K)
    for c in choices:
        ok = s.compute <= c.budget
        j = np.flatnonzero(ok)[np.argmin(y[ok])]
        assert (c.S, c.K) == (s.S[j], s.K[j]), c
        assert 1 <= c.S_fit <= 8 and 1 <= c.K_fit <= 10
    assert choices[0].spend == ON_K  # at 4 NFE: K = 1 → 2 beats S = 1 → 2
    assert choices[-1].spend == BOTH and (choices[-1].S, choices[-1].K) == (8, 10)


def test_a_surface_where_S_hurts_says_spend_on_K() -> None:
    rng = np.random.default_rng(6)
    s = _surface(lambda S, K: FLOOR + 110 * K ** -2.0 + 3 * np.log(S), (1, 2, 4, 8), (1, 2, 5, 10, 20),
                 lambda S, K: K + (S - 1) * np.ceil(K / 2), 3, rng)
    choices = allocate(s)
    assert choices and all(c.S == 1 and c.spend == ON_K for c in choices)
    one = allocate(Surface(s.S, s.K, s.compute, s.q[:1], "lower"))
    assert all(c.spend == UNTESTED and c.lean in (ON_K, ON_S, BOTH) for c in one)


def _frame(rows: list[dict]) -> pd.DataFrame:
    base = dict(run="synthetic", dataset="digits", sampler="default", family="f", category="refinement", outer=None,
                n=1000, dtype="float32", device="cpu", compile=False, status="ok", replicate=None)
    out = []
    for r in rows:
        point = {**base, **{k: v for k, v in r.items() if k != "metrics"}}
        point["point_id"] = f"{point['generator']}:S{point['S']}:K{point['K']}:s{point['seed']}"
        for m, v in r["metrics"].items():
            out.append({**point, "metric": m, "value": float(v)})
    return pd.DataFrame(out)


def _point(gen: str, S: int, K: int, seed: int, fid: float, copies: bool = False, **cost: float) -> dict:
    nfe = S * K
    metrics = {"fid": fid, "fid_floor": FLOOR, "fid_floor_sd": FLOOR_SD, "memorisation": 0.4 if copies else 0.005,
               "memorisation_floor": 0.005, "memorisation_floor_sd": 0.003}
    return dict(generator=gen, S=S, K=K, seed=seed, metrics=metrics, nfe=cost.get("nfe", nfe),
                flops=cost.get("flops", 1e6 * nfe), latency_s=cost.get("latency_s", 1e-4 * nfe))


def test_frontier_leaves_flagged_points_out() -> None:
    rows = [_point("slow", 1, k, s, 40 * k ** -0.5 + 0.1 * s) for k in (1, 4, 16) for s in range(3)]
    rows += [_point("copier", 1, 2, s, 0.9 + 0.01 * s, copies=True) for s in range(3)]  # best FID, by copying
    rows += [_point("fast", 1, 1, s, 10 + 0.2 * s) for s in range(3)]
    df = _frame(rows)
    pts = frontier_points(df, "fid", "lower", "flops")
    assert set(pts.loc[pts["flagged"], "method"]) == {"copier"}
    front = pts[pts["on_frontier"]]
    assert "copier" not in set(front["method"]) and set(front["method"]) == {"fast", "slow"}
    assert pts.attrs["gap"] and (front["lo"] < front["value"]).all() and (front["value"] < front["hi"]).all()
    lead = leaders(pts)
    assert "copier" not in set(lead["method"]) and "copier" not in ",".join(lead["tied"])
    assert lead.iloc[-1]["method"] == "slow" and lead.iloc[0]["method"] == "fast"
    with_copier = frontier_points(df, "fid", "lower", "flops", exclude_flagged=False)
    assert "copier" in set(with_copier.loc[with_copier["on_frontier"], "method"])


def test_latency_frontier_refuses_two_devices() -> None:
    from scalebench.errors import ResultsError

    df = _frame([_point("a", 1, 1, 0, 5.0), {**_point("b", 1, 1, 0, 4.0), "device": "cuda"}])
    with pytest.raises(ResultsError, match="latency"):
        frontier_points(df, "fid", "lower", "latency")


def _zoo() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    rows = []
    for s in range(3):
        for k, v in zip(GRID.astype(int), noisy(rng, FLOOR + 100 * GRID ** -1.3, 1)[0], strict=True):
            rows.append(_point("diff", 1, int(k), s, max(v, 0.01)))
        for S in (1, 2, 4):
            for k in (1, 5, 25):
                rows.append({**_point("both", S, k, s, FLOOR + 30 * S ** -0.7 + 90 * k ** -1.5 + 0.1 * s,
                                      nfe=S * (k + 1)), "category": "both-outer-S"})
    return _frame(rows)


def test_the_table_and_its_csv_carry_alpha_per_varied_axis(tmp_path) -> None:
    from scalebench.report.table import scalability_table
    from scalebench.report.tablefmt import table_display
    from scalebench.scaling.columns import column_names

    t = scalability_table(_zoo(), cards={})
    path = tmp_path / "table.csv"
    t.to_csv(path, index=False)
    csv = pd.read_csv(path)
    assert set(column_names()) <= set(csv.columns)
    diff = csv.set_index("generator").loc["diff"]
    assert diff["K_law_nfe"] == POWER_LAW and diff["K_alpha_nfe_lo"] < 1.3 < diff["K_alpha_nfe_hi"]
    assert math.isnan(diff["S_alpha_nfe"]) and pd.isna(diff["S_law_nfe"])  # S fixed: nothing to fit
    both = csv.set_index("generator").loc["both"]
    assert isinstance(both["allocation"], str) and both["allocation"].startswith("NFE ≤")
    shown = table_display(t).set_index("generator")
    assert "α(NFE) 1.3" in shown.loc["diff", "K evidence"] and "spend per budget" in shown.loc["both", "K evidence"]


def test_scalebench_table_csv_has_the_alpha_columns(tmp_path) -> None:
    from typer.testing import CliRunner

    from scalebench.cli import app
    from tests.report_fixtures import make_record, write_run

    recs = [make_record("m", 1, k, s, {"fid": FLOOR + 100 * k ** -1.0 * (1 + 0.01 * s), "fid_floor": FLOOR,
                                       "fid_floor_sd": FLOOR_SD}) for s in range(3) for k in (1, 2, 4, 8, 16)]
    run = write_run(tmp_path / "run", recs)
    out = tmp_path / "t.csv"
    res = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["table", str(run), "--csv", str(out)])
    assert res.exit_code == 0, res.output
    row = pd.read_csv(out).iloc[0]
    assert row["K_law_nfe"] == POWER_LAW and row["K_alpha_nfe"] == pytest.approx(1.0, rel=0.02)
    assert {"K_alpha_flops", "K_alpha_latency_lo", "K_floor_nfe"} <= set(row.index)


def test_figures_draw_fits_the_allocation_path_and_the_frontier() -> None:
    from scalebench.scaling.figures import allocation_figure, allocation_figures, fits_figure, frontier_figure

    df = _zoo()
    fits = fits_figure(df, "fid")
    assert isinstance(fits, go.Figure)
    assert any(t.name == "power-law fit" for t in fits.data)
    assert any("α 1.3" in a.text for a in fits.layout.annotations)
    figs = allocation_figures(df, "fid")
    assert list(figs) == ["both"]
    path = [t for t in allocation_figure(df, "both", "default", "fid").data if t.name == "best measured per budget"]
    assert len(path) == 1 and len(path[0].x) >= 3
    front = frontier_figure(df, "fid", "flops")
    assert any(t.name == "frontier" for t in front.data)


def test_generated_doc_matches_the_committed_records() -> None:
    from scalebench.scaling.docs import DOC, body, current, generate

    assert current(DOC.read_text(encoding="utf-8")) == body(generate()), \
        "docs/scaling-laws.md is stale: run python -m scalebench.scaling.docs"
