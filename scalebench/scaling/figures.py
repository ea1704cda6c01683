"""Plotly figures of the scaling fits, the compute-optimal S × K path and the cross-family frontier.

Builders only: each returns a `plotly.graph_objects.Figure` from a results table
(`scalebench.results.load_results`); the report decides where they go. Names (generators,
samplers) pass through `html.escape`, since plotly renders a subset of HTML in labels.

- `fits_figure`        — one panel per row and varied axis: the replicate means (± sd) against compute,
  the fitted power law over the measured range, the floor band, α and its interval (or why none);
- `allocation_figure`  — a both-axes row's S × K heatmap with the compute-optimal path per budget,
  measured (markers) and on the smooth fit (dashed); `allocation_figures` does every such row;
- `frontier_figure`    — every allocation of every family against FLOPs (or latency, NFE), the frontier
  with 95 % intervals, flagged allocations drawn apart and left out.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from scalebench.report.charts import log_ticks
from scalebench.scaling.allocation import allocate, surface_of
from scalebench.scaling.curves import (
    AXES,
    MEASURE_WORDS,
    RowKey,
    axis_curves,
    axis_slice,
    metric_points,
    row_floor,
    row_keys,
)
from scalebench.scaling.fit import FLOOR_Z, NO_LAW, NOT_FITTED, POWER_LAW, UNTESTED, fit_curve
from scalebench.scaling.frontier import frontier_points

COLS = 3
BAND = "rgba(120,120,120,0.18)"
FIT_COLOUR, POINT_COLOUR, PATH_COLOUR, SMOOTH_COLOUR = "#d62728", "#1f77b4", "#111111", "#ff7f0e"


def _metric(df: pd.DataFrame, metric: str | None) -> tuple[str, str]:
    from scalebench.metrics import METRICS
    from scalebench.report.table import check_metric

    m = check_metric(df, metric)
    return m, METRICS[m].better


def _esc(s: object) -> str:
    return html.escape(str(s), quote=False)


def _law_title(label: str, axis: str, fit: object) -> str:
    outcome, alpha = getattr(fit, "outcome", ""), getattr(fit, "alpha", math.nan)
    if outcome in (POWER_LAW, UNTESTED) and math.isfinite(alpha):
        lo, hi = fit.alpha_lo, fit.alpha_hi  # type: ignore[attr-defined]
        ci = f" [{lo:.2g}, {hi:.2g}]" if math.isfinite(lo) else " (1 replicate)"
        return f"{_esc(label)} {axis}: α {alpha:.2g}{ci}"
    short = {NO_LAW: "no power law", NOT_FITTED: "not fitted", UNTESTED: "untested"}.get(outcome, outcome)
    why = str(getattr(fit, "reason", "")).split(" (")[0].split(":")[0]
    return f"{_esc(label)} {axis}: {short}" + (f" ({_esc(why)})" if why and outcome != UNTESTED else "")


def fits_figure(df: pd.DataFrame, metric: str | None = None, measure: str = "nfe") -> go.Figure:
    """Small multiples: every row × varied axis with ≥ 3 compute values, its points and its fit."""
    metric, better = _metric(df, metric)
    pts = metric_points(df, metric)
    panels = []
    for key in row_keys(pts):
        mine = pts[key.mask(pts)]
        floor = row_floor(df, metric, key)
        for axis in AXES:
            if mine[axis].nunique() < 3:
                continue
            sl = axis_slice(mine, axis)
            curve = axis_curves(sl, axis, better, floor).get(measure) if sl is not None else None
            if curve is not None and curve.compute.size >= 3:
                panels.append((key, axis, curve, fit_curve(curve)))
    if not panels:
        fig = go.Figure()
        fig.add_annotation(text="no row varies an axis over 3 or more values", showarrow=False)
        return fig.update_layout(title="scaling fits")
    rows = math.ceil(len(panels) / COLS)
    fig = make_subplots(rows=rows, cols=min(COLS, len(panels)), horizontal_spacing=0.07, vertical_spacing=0.5 / rows,
                        subplot_titles=[_law_title(k.label, a, f) for k, a, _, f in panels])
    for i, (key, axis, curve, fit) in enumerate(panels):
        r, c = i // COLS + 1, i % COLS + 1
        order = np.argsort(curve.compute)
        x, q = curve.compute[order], curve.q[:, order]
        mean = np.nanmean(q, axis=0)
        sd = np.nanstd(q, axis=0, ddof=1) if q.shape[0] > 1 else None
        first = i == 0
        if math.isfinite(curve.floor):
            lo, hi = curve.floor - FLOOR_Z * curve.floor_sd, curve.floor + FLOOR_Z * curve.floor_sd
            lo = lo if lo > 0 else min(hi, curve.floor) / 10  # a log axis cannot draw ≤ 0
            fig.add_trace(go.Scatter(x=[x[0], x[-1], x[-1], x[0]], y=[lo, lo, hi, hi], mode="lines", fill="toself",
                                     fillcolor=BAND,
                                     line=dict(width=0), hoverinfo="skip", name="data floor ± 2 sd",
                                     legendgroup="floor", showlegend=first), row=r, col=c)
        fig.add_trace(go.Scatter(
            x=x, y=mean, mode="markers", marker=dict(color=POINT_COLOUR, size=7), name="measured (mean ± sd)",
            legendgroup="pts", showlegend=first,
            error_y=dict(type="data", array=sd, visible=True) if sd is not None else None,
            hovertemplate=f"{_esc(key.label)} {axis}<br>{MEASURE_WORDS[measure]} %{{x:.3g}}<br>{metric} %{{y:.4g}}"
                          "<extra></extra>"), row=r, col=c)
        if fit.has_alpha:
            xs = np.geomspace(x[0], x[-1], 60)
            fig.add_trace(go.Scatter(x=xs, y=fit.predict(xs), mode="lines", line=dict(color=FIT_COLOUR, width=2),
                                     name="power-law fit", legendgroup="fit", showlegend=first,
                                     hovertemplate=f"fit: α {fit.alpha:.3g}<extra></extra>"), row=r, col=c)
        positive = np.all(q[np.isfinite(q)] > 0)
        span = np.nanmax(mean) / max(np.nanmin(mean), 1e-12) if positive else 0
        fig.update_xaxes(type="log", title_text=MEASURE_WORDS[measure] if r == rows else None, row=r, col=c,
                         **log_ticks(x, max_ticks=5))
        logy = positive and span > 10
        fig.update_yaxes(type="log" if logy else "linear", title_text=metric if c == 1 else None, row=r, col=c,
                         **(log_ticks(mean, max_ticks=5) if logy else {}))
    fig.update_annotations(font_size=11)
    fig.update_layout(title=f"{metric} against {MEASURE_WORDS[measure]}: power law with an irreducible term "
                            "(scalebench/scaling/fit.py)", height=260 * rows + 170, template="plotly_white",
                      # the legend sits below the bottom row's axis title, not on it (plot area = height − t − b)
                      margin=dict(t=100, b=130),
                      legend=dict(orientation="h", yanchor="top", y=-70 / (260 * rows - 60)))
    return fig


def allocation_figure(df: pd.DataFrame, generator: str, sampler: str | None = None, metric: str | None = None,
                      measure: str = "nfe", dataset: str | None = None) -> go.Figure:
    """The row's S × K heatmap (mean metric; log colour when it spans a decade) with the best allocation
    per budget: measured (markers, labelled with the budget) and on the smooth fit (dashed)."""
    metric, better = _metric(df, metric)
    pts = metric_points(df, metric)
    if dataset is None:
        found = pts.loc[pts["generator"] == generator, "dataset"].dropna().unique()
        dataset = str(found[0]) if len(found) else None
    key = RowKey(dataset, generator, sampler)
    mine = pts[key.mask(pts)]
    surface = surface_of(mine, measure, better)  # type: ignore[arg-type]
    fig = go.Figure()
    if surface is None or len(np.unique(surface.S)) < 2 or len(np.unique(surface.K)) < 2:
        fig.add_annotation(text=f"{_esc(key.label)} does not vary both S and K", showarrow=False)
        return fig.update_layout(title=f"{_esc(key.label)}: compute-optimal S × K")
    s_vals, k_vals = np.unique(surface.S), np.unique(surface.K)
    grid = np.full((len(k_vals), len(s_vals)), np.nan)
    mean = surface.q.mean(axis=0)
    for s, k, v in zip(surface.S, surface.K, mean, strict=True):
        grid[np.searchsorted(k_vals, k), np.searchsorted(s_vals, s)] = v
    logc = bool(np.all(mean > 0) and mean.max() / mean.min() > 10)
    fig.add_trace(go.Heatmap(
        x=list(range(len(s_vals))), y=list(range(len(k_vals))), z=np.log10(grid) if logc else grid,
        text=[[f"{v:.3g}" if np.isfinite(v) else "" for v in row] for row in grid], texttemplate="%{text}",
        colorscale="Viridis" if better == "higher" else "Viridis_r", showscale=True,
        colorbar=dict(title=f"log10 {metric}" if logc else metric), hoverinfo="skip"))
    choices = allocate(surface)
    if choices:
        xi = [int(np.searchsorted(s_vals, c.S)) for c in choices]
        yi = [int(np.searchsorted(k_vals, c.K)) for c in choices]
        words = [f"{MEASURE_WORDS[measure]} ≤ {c.budget:.3g}: best {c.S}×{c.K} ({metric} {c.q:.3g}); spend: "
                 f"{c.spend}" + (f" (lean {c.lean})" if c.spend == UNTESTED else "") for c in choices]
        first = [i == 0 or (xi[i], yi[i]) != (xi[i - 1], yi[i - 1]) for i in range(len(choices))]
        fig.add_trace(go.Scatter(x=xi, y=yi, mode="lines+markers+text",
                                 text=[f"≤{c.budget:.3g}" if f else "" for c, f in zip(choices, first, strict=True)],
                                 textposition="top right", marker=dict(size=11, color=PATH_COLOUR, symbol="circle-open",
                                                                       line=dict(width=2)),
                                 line=dict(color=PATH_COLOUR, width=2), name="best measured per budget",
                                 hovertext=words, hoverinfo="text"))
        fit = [(c.S_fit, c.K_fit) for c in choices if math.isfinite(c.S_fit)]
        if fit:
            fx = np.interp(np.log([f[0] for f in fit]), np.log(s_vals), np.arange(len(s_vals)))
            fy = np.interp(np.log([f[1] for f in fit]), np.log(k_vals), np.arange(len(k_vals)))
            fig.add_trace(go.Scatter(x=fx, y=fy, mode="lines+markers", line=dict(color=SMOOTH_COLOUR, dash="dash"),
                                     marker=dict(size=6, color=SMOOTH_COLOUR), name="best on the smooth fit",
                                     hovertext=[f"smooth fit ≤ {c.budget:.3g}: S {c.S_fit:.3g}, K {c.K_fit:.3g}; spend "
                                                f"{c.spend_fit}" for c in choices if math.isfinite(c.S_fit)],
                                     hoverinfo="text"))
    fig.update_xaxes(tickvals=list(range(len(s_vals))), ticktext=[str(int(v)) for v in s_vals], title_text="S")
    fig.update_yaxes(tickvals=list(range(len(k_vals))), ticktext=[str(int(v)) for v in k_vals], title_text="K")
    return fig.update_layout(title=f"{_esc(key.label)}: {metric} over S × K and the compute-optimal path per "
                                   f"{MEASURE_WORDS[measure]} budget", template="plotly_white", height=460,
                             legend=dict(orientation="h", y=-0.2))


def allocation_figures(df: pd.DataFrame, metric: str | None = None, measure: str = "nfe") -> dict[str, go.Figure]:
    """label → `allocation_figure` for every row that varies both S and K."""
    metric, _ = _metric(df, metric)
    pts = metric_points(df, metric)
    out = {}
    for key in row_keys(pts):
        mine = pts[key.mask(pts)]
        if mine["S"].nunique() > 1 and mine["K"].nunique() > 1:
            out[key.label] = allocation_figure(df, key.generator, key.sampler, metric, measure, key.dataset)
    return out


def frontier_figure(df: pd.DataFrame, metric: str | None = None, measure: str = "flops") -> go.Figure:
    """Every allocation (faded) against compute, the frontier across families with 95 % intervals, and the
    flagged allocations (left out) ringed in red."""
    metric, better = _metric(df, metric)
    p = frontier_points(df, metric, better, measure)
    gap = bool(p.attrs.get("gap", False))
    ylab = f"{metric} − data floor (lower = closer to real data)" if gap else metric
    scale = 1e3 if measure == "latency" else 1.0
    xlab = "latency per sample (ms)" if measure == "latency" else MEASURE_WORDS[measure]
    fig = go.Figure()
    if p.empty or "compute" not in p.columns:  # no point carries this compute measure (e.g. no FLOPs counted)
        return fig.update_layout(title=f"best {metric} per {xlab}: no point with a {xlab}", template="plotly_white")
    clean, bad, front = p[~p["flagged"]], p[p["flagged"]], p[p["on_frontier"]].sort_values("compute")

    def hover(d: pd.DataFrame) -> list[str]:
        return [f"{_esc(m)} S={s} K={k}: {v:.3g}" for m, s, k, v in zip(d["method"], d["S"], d["K"], d["value"],
                                                                          strict=True)]

    fig.add_trace(go.Scatter(x=clean["compute"] * scale, y=clean["value"], mode="markers", name="every allocation",
                             marker=dict(color="rgba(100,100,100,0.35)", size=6), hovertext=hover(clean),
                             hoverinfo="text"))
    if len(bad):
        fig.add_trace(go.Scatter(x=bad["compute"] * scale, y=bad["value"], mode="markers",
                                 name="left out: flagged copies / collapse", hovertext=hover(bad), hoverinfo="text",
                                 marker=dict(color="rgba(0,0,0,0)", size=11, line=dict(color="red", width=2))))
    if len(front):
        fig.add_trace(go.Scatter(x=front["compute"] * scale, y=front["value"], mode="lines", line_shape="hv",
                                 line=dict(color="#333", width=1.5), name="frontier", hoverinfo="skip"))
        for method, g in front.groupby("method", sort=False):
            err = (g["hi"] - g["value"]).to_numpy(float)
            fig.add_trace(go.Scatter(
                x=g["compute"] * scale, y=g["value"], mode="markers", name=_esc(method), marker=dict(size=10),
                error_y=dict(type="data", array=err, arrayminus=(g["value"] - g["lo"]).to_numpy(float),
                             visible=bool(np.isfinite(err).any())),
                hovertext=[f"{h} [{lo:.3g}, {hi:.3g}], {r} replicates" for h, lo, hi, r in
                           zip(hover(g), g["lo"], g["hi"], g["replicates"], strict=True)], hoverinfo="text"))
    positive = bool(len(clean) and (clean["value"] > 0).all())
    span = clean["value"].max() / clean["value"].min() if positive else 0
    fig.update_xaxes(type="log", title_text=xlab, **log_ticks(p["compute"] * scale, max_ticks=10))
    logy = positive and span > 10
    fig.update_yaxes(type="log" if logy else "linear", title_text=ylab, **(log_ticks(clean["value"]) if logy else {}))
    return fig.update_layout(title=f"best {metric} per {xlab} across families (frontier: no cheaper allocation is "
                                   "better; flagged points left out)", template="plotly_white", height=520)
