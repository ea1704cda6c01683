"""Plotly figures of the tidy results: one function per view, each `(df, metric) -> Figure`.

Points are averaged over seeds; where a point has several seeds the error bars are ±1
standard deviation over seeds (latency with one seed shows its p10–p90 instead). Averages
refuse to mix n, dtype, device or dataset within a method (`check_homogeneous`). A quality
axis is logarithmic when its values are positive and span more than a decade (FID 130 → 0.5),
and when the records carry a data floor (`metrics["<metric>_floor"]`, `..._floor_sd`) the
quality charts draw it as a grey band, mean ± `FLOOR_Z` sd, with a dotted line at the mean. Method
names are HTML-escaped before they reach Plotly, whose text renderer interprets a subset
of HTML: escaped, a generator called `<script>` is shown literally (Plotly decodes the
entities for display) and cannot inject markup; Plotly's JSON encoder additionally writes
`<`, `>` and `/` as \\u escapes, so no string can close the page's <script> tag.

A point flagged by `scalebench.flags` (near-copies of training data, or collapse) is ringed in red
on the quality charts and is never part of the Pareto frontier: its good number is not a
trade-off anyone should pick. The data floor depends on the sample count n, so when a chart holds
methods measured at different n each method's legend name carries its n and each n's floor gets
its own band ("data floor … at n=500"), instead of one band silently standing for all.

A method measured at a single budget — the one-shot baselines whose card fixes both S and K
(VAE, GAN, flow: one network call per sample) — is drawn on every quality and latency chart as
one large marker (`ONE_SHOT_SYMBOL`), never a line, in its own legend group titled
`ONE_SHOT_GROUP`, so the reader sees where one-shot sampling sits against the scaling curves.

On the charts along S, a point whose generator reports the `api.STEPS_TAKEN` diagnostic (the mean
sequential steps a sample actually took, when they depend on the data: blockwise decoding) is placed
at that value instead of its nominal S (`s_coordinate`); the hover keeps the nominal S and K.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from scalebench.api import STEPS_TAKEN
from scalebench.errors import ResultsError
from scalebench.metrics import METRICS
from scalebench.report.table import check_homogeneous, check_metric, method_floor

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#843c39", "#7b4173", "#3182bd"]
SEED_NOTE = "error bars: ±1 s.d. over seeds"
POINT = ["generator", "sampler", "S", "K"]
FLOOR_Z = 2.0  # the band drawn is floor mean ± FLOOR_Z sd (DecisionRule.floor_z's default)
FLOOR_NAME = "data floor (real data, ±2 sd)"
DECADE = 10.0  # a quality axis goes logarithmic when max/min of the plotted values exceeds this
ONE_SHOT_GROUP = "one-shot (S, K fixed)"
ONE_SHOT_SYMBOL = "diamond"
CURVE_MODE = "lines+markers"
ONE_SHOT_RANK = 2000  # after every other legend entry (Plotly's default rank is 1000), so no curve is listed
#                       under the one-shot heading


def one_shot_methods(points: pd.DataFrame) -> set[str]:
    """Methods (the `method` column) measured at exactly one (S, K) budget: the one-shot baselines."""
    if points.empty:
        return set()
    n = points.groupby("method")[["S", "K"]].apply(lambda p: len(p.drop_duplicates()))
    return {str(m) for m, k in n.items() if k == 1}


def trace_style(color: str, one_shot: bool, n_points: int, curve: bool = True) -> dict:
    """Scatter keywords of one method's trace: a big outlined marker in the one-shot legend group for a
    single-budget method; otherwise `CURVE_MODE` (markers only for one point or when `curve` is False)."""
    if one_shot:
        return {"mode": "markers", "legendgroup": ONE_SHOT_GROUP, "showlegend": True, "legendrank": ONE_SHOT_RANK,
                "marker": {"color": color, "size": 13, "symbol": ONE_SHOT_SYMBOL, "line": {"color": "#222", "width": 1}}}
    return {"mode": CURVE_MODE if curve and n_points > 1 else "markers", "showlegend": True,
            "marker": {"color": color, "size": 8}, "line": {"color": color}}


def _title_one_shot_group(fig: go.Figure) -> go.Figure:
    """Put the one-shot legend group's title on its first trace (Plotly shows the first one)."""
    for tr in fig.data:
        if getattr(tr, "legendgroup", None) == ONE_SHOT_GROUP:
            tr.legendgrouptitle = {"text": ONE_SHOT_GROUP}
            break
    return fig


def log_axis(values: Iterable[float]) -> bool:
    """True when every finite value is positive and they span more than a decade."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    return bool(len(v) >= 2 and (v > 0).all() and v.max() / v.min() > DECADE)


def floors_by_n(df: pd.DataFrame, metric: str) -> list[tuple[float, float, int | None]]:
    """Distinct (mean, sd, n) data floors of `metric` over the methods in `df` (one per sample size,
    usually): the floor depends on n, so a chart mixing n shows each n's band."""
    ok = df[(df["status"] == "ok")]
    out: list[tuple[float, float, int | None]] = []
    for _, g in ok.groupby(["generator", ok["sampler"].fillna("default")], sort=True):
        f = method_floor(g, metric)
        ns = g.loc[g["metric"] == metric + "_floor", "n"].dropna().unique()
        n = int(ns[0]) if len(ns) == 1 else None
        if f is not None and not any(math.isclose(f.mean, a) and math.isclose(f.sd, b) for a, b, _ in out):
            out.append((f.mean, f.sd, n))
    return sorted(out, key=lambda t: (t[2] is None, t[2] or 0))


def floors(df: pd.DataFrame, metric: str) -> list[tuple[float, float]]:
    """Distinct (mean, sd) data floors of `metric` over the methods in `df` (usually one)."""
    return [(mean, sd) for mean, sd, _ in floors_by_n(df, metric)]


def add_floor_band(fig: go.Figure, df: pd.DataFrame, metric: str, x: Iterable[float]) -> list[tuple[float, float]]:
    """Draw each distinct floor of `metric` as a band (mean ± FLOOR_Z sd) across the x range, named by its n
    when the chart holds several sample sizes."""
    xs = [float(v) for v in x if v is not None and np.isfinite(v) and v > 0]
    found = floors_by_n(df, metric)
    if not xs or not found:
        return [(mean, sd) for mean, sd, _ in found]
    x0, x1 = min(xs), max(xs)
    by_n = len({n for _, _, n in found}) == len(found) and None not in {n for _, _, n in found}
    for i, (mean, sd, n) in enumerate(found):
        lo, hi = mean - FLOOR_Z * sd, mean + FLOOR_Z * sd
        name = (FLOOR_NAME if len(found) == 1 else f"{FLOOR_NAME} at n={n}" if by_n
                else f"{FLOOR_NAME} #{i + 1}")
        fig.add_trace(go.Scatter(
            x=[x0, x1, x1, x0, x0], y=[lo, lo, hi, hi, lo], fill="toself", mode="lines", name=name,
            fillcolor=f"rgba(120,120,120,{0.22 if len(found) == 1 else 0.14})", line={"width": 0},
            hoverinfo="skip", legendgroup=name))
        fig.add_trace(go.Scatter(
            x=[x0, x1], y=[mean, mean], mode="lines", line={"color": "#555", "dash": "dot", "width": 1},
            name=f"floor {mean:.3g} ± {sd:.2g}", legendgroup=name, showlegend=False,
            hovertemplate=f"data floor{f' at n={n}' if n else ''} {mean:.4g} ± {sd:.3g} (±{FLOOR_Z:g} sd band)"
                          "<extra></extra>"))
    return [(mean, sd) for mean, sd, _ in found]


def _quality_log(fig: go.Figure, means: Iterable[float], found: list[tuple[float, float]]) -> bool:
    """Switch the y axis to log when the plotted quality values (and floor means) span a decade."""
    vals = list(means) + [m for m, _ in found]
    use = log_axis(vals)
    if use:
        fig.update_yaxes(type="log")
    return use


def method_label(generator: object, sampler: object) -> str:
    """Display name of a generator × sampler, HTML-escaped for Plotly's text renderer."""
    name = str(generator) if sampler in (None, "", "default") or pd.isna(sampler) else f"{generator}/{sampler}"
    return html.escape(name)


def _layout(fig: go.Figure, title: str, x: str, y: str, logx: bool = False, logy: bool = False) -> go.Figure:
    fig.update_layout(title=html.escape(title), template="plotly_white", height=460,
                      legend={"title": {"text": "method"}, "groupclick": "toggleitem"},
                      margin={"t": 60, "l": 70, "r": 20, "b": 60})
    _title_one_shot_group(fig)
    fig.update_xaxes(title_text=html.escape(x), type="log" if logx else "linear")
    fig.update_yaxes(title_text=html.escape(y), type="log" if logy else "linear")
    return fig


def _ticks(fig: go.Figure, values: pd.Series) -> go.Figure:
    """Label a log step axis at the measured step counts (Plotly's log ticks read 8 9 1 2 …)."""
    vals = sorted({round(v) for v in values})
    if vals:
        fig.update_xaxes(tickvals=vals, ticktext=[str(v) for v in vals])
    return fig


def _metric_title(metric: str) -> str:
    spec = METRICS[metric]
    unit = f" [{spec.unit}]" if spec.unit else ""
    return f"{metric}{unit} ({spec.better} is better)"


def aggregate(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per point (generator, sampler, S, K): mean/sd/n over seeds of `metric` and mean costs."""
    ok = df[(df["status"] == "ok") & (df["metric"] == metric) & df["value"].notna()].copy()
    ok["sampler"] = ok["sampler"].fillna("default")
    check_homogeneous(ok, ["generator", "sampler"], f"{metric} values")
    for c in ("S", "K"):
        ok[c] = ok[c].astype(int)
    g = ok.groupby(POINT, sort=True)
    out = g["value"].agg(mean="mean", sd="std", n="count").reset_index()
    for c in ("nfe", "flops", "latency_s", "latency_p10_s", "latency_p90_s"):
        cost = g[c].agg(["mean", "std"]).reset_index(drop=True)
        out[c], out[c + "_sd"] = cost["mean"].to_numpy(), cost["std"].to_numpy()
    out["samples"] = g["n"].first().to_numpy() if "n" in ok.columns else np.nan
    out["method"] = [method_label(a, b) for a, b in zip(out["generator"], out["sampler"], strict=True)]
    if out["samples"].nunique() > 1:  # methods measured at different n: never compared silently
        out["method"] = [f"{m} (n={int(n)})" if pd.notna(n) else m
                         for m, n in zip(out["method"], out["samples"], strict=True)]
    out["flagged"] = _flagged(df, out)
    return out


def _flagged(df: pd.DataFrame, points: pd.DataFrame) -> list[str]:
    """Per aggregated point: its flags over seeds ("copies", "collapse"; "" if none; `scalebench.flags`)."""
    from scalebench.flags import point_flags

    pf = point_flags(df)
    pf = pf[pf["flags"] != ""]
    if pf.empty or points.empty:
        return [""] * len(points)
    pf = pf.assign(sampler=pf["sampler"].fillna("default"), S=pf["S"].astype(int), K=pf["K"].astype(int))
    by_point = pf.groupby(POINT)["flags"].agg(lambda f: ", ".join(sorted(set(", ".join(f).split(", ")))))
    keys = pd.MultiIndex.from_frame(points[POINT].astype({"S": int, "K": int}))
    return [v if isinstance(v, str) else "" for v in by_point.reindex(keys).tolist()]


FLAG_NAME = "flagged: copies / collapse (scalebench/flags.py)"


def add_flag_markers(fig: go.Figure, points: pd.DataFrame, x: str, y: str = "mean") -> None:
    """Ring each flagged point in red, one legend entry: its good number may come from copying or collapse."""
    bad = points[points["flagged"] != ""]
    if bad.empty:
        return
    fig.add_trace(go.Scatter(
        x=bad[x], y=bad[y], mode="markers", name=FLAG_NAME,
        marker={"symbol": "circle-open", "size": 18, "color": "#c00", "line": {"width": 3}},
        text=bad["method"] + " S=" + bad["S"].astype(str) + " K=" + bad["K"].astype(str) + ": " + bad["flagged"],
        hovertemplate="%{text}<extra>flagged</extra>"))


def colors(methods: list[str]) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(sorted(set(methods)))}


def _err(sd: pd.Series, n: pd.Series) -> dict | None:
    arr = np.where(n.to_numpy() >= 2, sd.fillna(0).to_numpy(), 0.0)
    return {"type": "data", "array": arr, "visible": True} if bool((n >= 2).any()) else None


def s_coordinate(df: pd.DataFrame, points: pd.DataFrame) -> pd.Series:
    """The x of `points` (POINT columns) on an S chart: the mean over seeds of the `api.STEPS_TAKEN`
    diagnostic where the point reports one (data-dependent steps, e.g. blockwise decoding), else S."""
    d = df[(df["metric"] == STEPS_TAKEN) & (df["kind"] == "diagnostic") & df["value"].notna()] \
        if "kind" in df.columns else df.iloc[:0]
    x = points["S"].astype(float)
    if d.empty:
        return x
    d = d.assign(sampler=d["sampler"].fillna("default"), S=d["S"].astype(int), K=d["K"].astype(int))
    taken = d.groupby(POINT)["value"].mean()
    keys = pd.MultiIndex.from_frame(points[POINT].astype({"S": int, "K": int}))
    found = taken.reindex(keys).to_numpy(dtype=float)
    return pd.Series(np.where(np.isnan(found), x.to_numpy(), found), index=points.index)


def axis_slice(points: pd.DataFrame, axis: str) -> tuple[pd.DataFrame, str]:
    """The curve along `axis` shown for one method: at the largest other-axis value where it varies."""
    other = "K" if axis == "S" else "S"
    for b in sorted(points[other].unique(), reverse=True):
        cand = points[points[other] == b]
        if cand[axis].nunique() >= 2:
            return cand, (f" ({other}={b})" if points[other].nunique() > 1 else "")
    top = points[points[other] == points[other].max()]
    return top, ""


def quality_vs_axis(df: pd.DataFrame, metric: str | None = None, axis: str = "K") -> go.Figure:
    """Quality vs S or K per method (log x), at the table's slice for methods varying both axes."""
    if axis not in ("S", "K"):
        raise ValueError(f"axis={axis!r}; use 'S' or 'K'")
    metric = check_metric(df, metric)
    agg = aggregate(df, metric)
    col = colors(list(agg["method"]))
    single = one_shot_methods(agg)
    fig = go.Figure()
    agg["_x"] = s_coordinate(df, agg) if axis == "S" else agg[axis].astype(float)
    drawn = []
    for method, pts in agg.groupby("method", sort=True):
        sl, note = axis_slice(pts, axis)
        sl = sl.sort_values("_x")
        drawn.append(sl)
        fig.add_trace(go.Scatter(
            x=sl["_x"], y=sl["mean"], error_y=_err(sl["sd"], sl["n"]), name=method + html.escape(note),
            **trace_style(col[method], method in single, len(sl)),
            customdata=np.stack([sl["S"], sl["K"], sl["n"]], axis=-1),
            hovertemplate="S=%{customdata[0]} K=%{customdata[1]}<br>%{y:.4g} (%{customdata[2]} seeds)"))
    if drawn:
        add_flag_markers(fig, pd.concat(drawn), "_x")
    name = "refinement steps K" if axis == "K" else "sequence steps S"
    found = add_floor_band(fig, df, metric, agg[axis])
    _layout(fig, f"{metric} vs {name} — {SEED_NOTE}", name, _metric_title(metric), logx=True)
    _quality_log(fig, agg["mean"], found)
    return _ticks(fig, agg["_x"])


def quality_vs_K(df: pd.DataFrame, metric: str | None = None) -> go.Figure:
    return quality_vs_axis(df, metric, "K")


def quality_vs_S(df: pd.DataFrame, metric: str | None = None) -> go.Figure:
    return quality_vs_axis(df, metric, "S")


COSTS = {"nfe": "NFE (network calls in sequence per batch)", "flops": "FLOPs per sample",
         "latency_s": "latency per sample [ms]"}
SCALE = {"latency_s": 1e3}  # shown in ms


def pareto_front(x: np.ndarray, y: np.ndarray, better: str) -> np.ndarray:
    """Indices of the points no other point beats on both cost (lower) and quality, by cost."""
    sign = 1.0 if better == "higher" else -1.0
    order = np.lexsort((-sign * y, x))
    front, best = [], -math.inf
    for i in order:
        if sign * y[i] > best:
            front.append(i)
            best = sign * y[i]
    return np.asarray(front, dtype=int)


def quality_vs_cost(df: pd.DataFrame, metric: str | None = None, cost: str = "nfe",
                    pareto: bool = False) -> go.Figure:
    """Quality vs a cost column (log x), every grid point; optionally the Pareto frontier of all methods."""
    if cost not in COSTS:
        raise ValueError(f"cost={cost!r}; use one of {list(COSTS)}")
    metric = check_metric(df, metric)
    agg = aggregate(df, metric)
    col = colors(list(agg["method"]))
    single = one_shot_methods(agg)
    agg = agg[agg[cost].notna() & (agg[cost] > 0)].copy()
    f = SCALE.get(cost, 1.0)
    agg[cost], agg[cost + "_sd"] = agg[cost] * f, agg[cost + "_sd"] * f
    fig = go.Figure()
    for method, pts in agg.groupby("method", sort=True):
        both = pts["S"].nunique() > 1 and pts["K"].nunique() > 1
        pts = pts.sort_values(cost)
        err_x = _err(pts[cost + "_sd"], pts["n"])
        fig.add_trace(go.Scatter(
            x=pts[cost], y=pts["mean"], error_y=_err(pts["sd"], pts["n"]), error_x=err_x, name=method,
            **trace_style(col[method], method in single, len(pts), curve=not both),
            customdata=np.stack([pts["S"], pts["K"], pts["n"]], axis=-1),
            hovertemplate="S=%{customdata[0]} K=%{customdata[1]}<br>cost %{x:.4g}<br>%{y:.4g} (%{customdata[2]} seeds)"))
    add_flag_markers(fig, agg, cost)
    clean = agg[agg["flagged"] == ""]  # a copier or a collapsed point is never drawn as the frontier
    if pareto and len(clean):
        idx = pareto_front(clean[cost].to_numpy(float), clean["mean"].to_numpy(float), METRICS[metric].better)
        front = clean.iloc[idx]
        fig.add_trace(go.Scatter(x=front[cost], y=front["mean"], name="Pareto frontier", mode="lines",
                                 line={"color": "black", "dash": "dash", "shape": "hv"},
                                 text=front["method"] + " S=" + front["S"].astype(str) + " K=" + front["K"].astype(str),
                                 hovertemplate="%{text}<br>cost %{x:.4g}<br>%{y:.4g}"))
    suffix = " with the Pareto frontier across methods" if pareto else ""
    found = add_floor_band(fig, df, metric, agg[cost])
    _layout(fig, f"{metric} vs {COSTS[cost]}{suffix} — {SEED_NOTE}", COSTS[cost], _metric_title(metric), logx=True)
    _quality_log(fig, agg["mean"], found)
    return fig


def quality_vs_nfe(df: pd.DataFrame, metric: str | None = None) -> go.Figure:
    return quality_vs_cost(df, metric, "nfe")


def quality_vs_flops(df: pd.DataFrame, metric: str | None = None) -> go.Figure:
    return quality_vs_cost(df, metric, "flops")


def quality_vs_latency(df: pd.DataFrame, metric: str | None = None) -> go.Figure:
    return quality_vs_cost(df, metric, "latency_s", pareto=True)


def both_axes_methods(agg: pd.DataFrame) -> list[str]:
    return [m for m, p in agg.groupby("method", sort=True) if p["S"].nunique() > 1 and p["K"].nunique() > 1]


def _no_both_axes(title: str) -> go.Figure:
    """The placeholder of the both-axes charts when no method varies S and K together."""
    fig = go.Figure()
    fig.add_annotation(text="no method varies both S and K in these results", showarrow=False,
                       x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, "", "")


def sk_heatmap(df: pd.DataFrame, metric: str | None = None) -> go.Figure:
    """S × K heatmap of quality for each method that varies both axes (brighter = better)."""
    from plotly.subplots import make_subplots

    metric = check_metric(df, metric)
    agg = aggregate(df, metric)
    methods = both_axes_methods(agg)
    if not methods:
        return _no_both_axes(f"{metric} over S × K")
    fig = make_subplots(rows=1, cols=len(methods), subplot_titles=methods, horizontal_spacing=0.08)
    reverse = METRICS[metric].better == "lower"
    logz = log_axis(agg.loc[agg["method"].isin(methods), "mean"])
    for i, m in enumerate(methods, 1):
        wide = agg[agg["method"] == m].pivot_table(index="S", columns="K", values="mean")
        z = wide.to_numpy(dtype=float)
        fig.add_trace(go.Heatmap(
            z=np.log10(z) if logz else z, text=[["" if np.isnan(v) else f"{v:.3g}" for v in row] for row in z],
            x=[str(k) for k in wide.columns], y=[str(s) for s in wide.index], colorscale="Viridis",
            reversescale=reverse, texttemplate="%{text}", showscale=(i == len(methods)),
            colorbar={"title": {"text": f"log10 {html.escape(metric)}" if logz else html.escape(metric)}},
            name=m, hovertemplate="S=%{y} K=%{x}<br>%{text}<extra>" + m + "</extra>"), row=1, col=i)
        fig.update_xaxes(title_text="K", type="category", row=1, col=i)
        fig.update_yaxes(title_text="S", type="category", row=1, col=i)
    fig.update_layout(title=html.escape(f"{metric} over S × K (mean over seeds; brighter is better)"),
                      template="plotly_white", height=420, margin={"t": 80, "l": 60, "r": 20, "b": 60})
    return fig


def axis_exchange(agg: pd.DataFrame, better: str) -> pd.DataFrame:
    """Which axis buys more quality per unit of compute, per method that varies both S and K.

    For each slice of the other axis where `axis` takes ≥ 2 values, the least-squares slope of the
    mean metric against log2(NFE); the gain per doubling of NFE is that slope signed so that positive
    is better; the row holds the median over slices (rows: method, axis, gain_per_doubling, slices).
    """
    rows = []
    sign = 1.0 if better == "higher" else -1.0
    for method in both_axes_methods(agg):
        pts = agg[(agg["method"] == method) & agg["nfe"].notna() & (agg["nfe"] > 0)]
        for axis, other in (("S", "K"), ("K", "S")):
            gains = []
            for _, sl in pts.groupby(other):
                if sl[axis].nunique() < 2 or sl["nfe"].nunique() < 2:
                    continue
                x = np.log2(sl["nfe"].to_numpy(float))
                gains.append(sign * float(np.polyfit(x, sl["mean"].to_numpy(float), 1)[0]))
            rows.append({"method": method, "axis": axis, "slices": len(gains),
                         "gain_per_doubling": float(np.median(gains)) if gains else math.nan})
    return pd.DataFrame(rows, columns=["method", "axis", "gain_per_doubling", "slices"])


def exchange_verdict(ex: pd.DataFrame, method: str) -> str:
    """One line: the gain per NFE doubling along S and along K, and the axis that buys more."""
    g = ex[ex["method"] == method].set_index("axis")["gain_per_doubling"]
    gs, gk = g.get("S", math.nan), g.get("K", math.nan)
    if math.isnan(gs) or math.isnan(gk):
        return "S and K never both varied at a fixed other axis"
    best = "S" if gs > gk else "K" if gk > gs else "neither"
    return f"per NFE doubling: S {gs:+.3g}, K {gk:+.3g} → {best} buys more"


def quality_vs_total_nfe(df: pd.DataFrame, metric: str | None = None) -> go.Figure:
    """For each method varying both axes, quality against total NFE with one line per slice: solid lines
    vary S at a fixed K, dashed lines vary K at a fixed S. At equal NFE the lower (better) family of
    lines is the axis that buys more quality per unit of compute — the seed's question for "both" rows."""
    from plotly.subplots import make_subplots

    metric = check_metric(df, metric)
    agg = aggregate(df, metric)
    methods = both_axes_methods(agg)
    if not methods:
        return _no_both_axes(f"{metric} vs total NFE (S × K)")
    ex = axis_exchange(agg, METRICS[metric].better)
    titles = [html.escape(f"{m}: {exchange_verdict(ex, m)}") for m in methods]
    fig = make_subplots(rows=1, cols=len(methods), subplot_titles=titles, horizontal_spacing=0.06)
    shades = {"S": ("#1f4e9c", "#6a9bd8", "#b5cdee"), "K": ("#b3400c", "#ec8a3c", "#f6c49c")}
    logy = log_axis(agg.loc[agg["method"].isin(methods), "mean"])
    for i, m in enumerate(methods, 1):
        pts = agg[(agg["method"] == m) & agg["nfe"].notna() & (agg["nfe"] > 0)]
        for axis, other, dash in (("S", "K", "solid"), ("K", "S", "dash")):
            slices = [(b, sl) for b, sl in pts.groupby(other, sort=True) if sl[axis].nunique() >= 2]
            for j, (b, sl) in enumerate(slices):
                sl = sl.sort_values("nfe")
                shade = shades[axis][min(j * len(shades[axis]) // max(len(slices), 1), len(shades[axis]) - 1)]
                fig.add_trace(go.Scatter(
                    x=sl["nfe"], y=sl["mean"], mode="lines+markers", line={"color": shade, "dash": dash},
                    name=html.escape(f"{m}: {axis} varies, {other}={int(b)}"), legendgroup=m,
                    customdata=np.stack([sl["S"], sl["K"], sl["n"]], axis=-1),
                    hovertemplate="S=%{customdata[0]} K=%{customdata[1]}<br>NFE %{x:.4g}<br>%{y:.4g}"
                                  " (%{customdata[2]} seeds)"), row=1, col=i)
        fig.update_xaxes(title_text="total NFE (S × K network calls)", type="log", row=1, col=i)
        fig.update_yaxes(title_text=html.escape(_metric_title(metric)) if i == 1 else None,
                         type="log" if logy else "linear", row=1, col=i)
    fig.update_layout(title=html.escape(f"{metric} vs total NFE: solid = more S at fixed K, dashed = more K at "
                                        f"fixed S (mean over seeds)"),
                      template="plotly_white", height=460, margin={"t": 90, "l": 60, "r": 20, "b": 60})
    return fig


def latency_vs_axis(df: pd.DataFrame, axis: str = "K") -> go.Figure:
    """Latency per sample vs S or K (log–log); bars are s.d. over seeds, or p10–p90 with one seed."""
    if axis not in ("S", "K"):
        raise ValueError(f"axis={axis!r}; use 'S' or 'K'")
    ok = df[(df["status"] == "ok") & (df["metric"] == "latency_s") & df["value"].notna()].copy()
    if ok.empty:
        raise ResultsError("the results hold no latency values (every point failed?)")
    ok["sampler"] = ok["sampler"].fillna("default")
    check_homogeneous(ok, ["generator", "sampler"], "latencies")
    ok[["S", "K"]] = ok[["S", "K"]].astype(int)
    g = ok.groupby(POINT, sort=True)
    agg = g["latency_s"].agg(mean="mean", sd="std", n="count").reset_index()
    agg["p10"] = g["latency_p10_s"].mean().to_numpy()
    agg["p90"] = g["latency_p90_s"].mean().to_numpy()
    agg["method"] = [method_label(a, b) for a, b in zip(agg["generator"], agg["sampler"], strict=True)]
    agg["_x"] = s_coordinate(df, agg) if axis == "S" else agg[axis].astype(float)
    col = colors(list(agg["method"]))
    single = one_shot_methods(agg)
    fig = go.Figure()
    drawn = []
    for method, pts in agg.groupby("method", sort=True):
        sl, note = axis_slice(pts, axis)
        sl = sl.sort_values("_x")
        drawn.append(sl)
        if (sl["n"] >= 2).any():
            err = {"type": "data", "array": sl["sd"].fillna(0) * 1e3, "visible": True}
        else:
            err = {"type": "data", "symmetric": False, "array": (sl["p90"] - sl["mean"]).clip(lower=0) * 1e3,
                   "arrayminus": (sl["mean"] - sl["p10"]).clip(lower=0) * 1e3, "visible": True}
        fig.add_trace(go.Scatter(x=sl["_x"], y=sl["mean"] * 1e3, error_y=err, name=method + html.escape(note),
                                 **trace_style(col[method], method in single, len(sl)),
                                 hovertemplate=f"{axis}=%{{x}}<br>%{{y:.4g}} ms/sample"))
    name = "refinement steps K" if axis == "K" else "sequence steps S"
    _layout(fig, f"latency vs {name} — s.d. over seeds, or p10–p90 with one seed", name,
            "latency per sample [ms]", logx=True, logy=True)
    return _ticks(fig, agg["_x"])


def latency_vs_S(df: pd.DataFrame) -> go.Figure:
    return latency_vs_axis(df, "S")


def latency_vs_K(df: pd.DataFrame) -> go.Figure:
    return latency_vs_axis(df, "K")


def is_rgb(images: np.ndarray) -> bool:
    return np.asarray(images).ndim == 4 and np.asarray(images).shape[1] == 3


def mosaic(images: np.ndarray, cols: int = 4, pad: int = 1) -> np.ndarray:
    """N×C×H×W floats in [0, 1] → one H'×W' grey image (NaN padding), or H'×W'×3 for RGB (white padding)."""
    x = np.asarray(images, dtype=float)
    if x.ndim == 3:
        x = x[:, None]
    rgb = x.shape[1] == 3
    x = x.transpose(0, 2, 3, 1) if rgb else x.mean(axis=1)
    n, h, w = x.shape[:3]
    rows = math.ceil(n / cols)
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, *x.shape[3:]), 1.0 if rgb else np.nan)
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = x[i]
    return out


def sample_grid(previews: Mapping[str, np.ndarray], title: str = "samples", cols: int = 4) -> go.Figure:
    """One mosaic of preview samples per labelled point (labels are escaped here)."""
    from plotly.subplots import make_subplots

    labels = list(previews)
    if not labels:
        fig = go.Figure()
        fig.add_annotation(text="no sample previews in these results", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return _layout(fig, title, "", "")
    fig = make_subplots(rows=1, cols=len(labels), subplot_titles=[html.escape(lab) for lab in labels],
                        horizontal_spacing=0.02)
    for i, lab in enumerate(labels, 1):
        if is_rgb(previews[lab]):  # colour images keep their colours
            z = np.round(mosaic(previews[lab], cols) * 255).astype(np.uint8)
            fig.add_trace(go.Image(z=z, name=html.escape(lab), hoverinfo="skip"), row=1, col=i)
        else:
            fig.add_trace(go.Heatmap(z=mosaic(previews[lab], cols), colorscale="gray", zmin=0, zmax=1,
                                     showscale=False, name=html.escape(lab), hoverinfo="skip"), row=1, col=i)
        fig.update_xaxes(visible=False, row=1, col=i)
        fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=f"x{i if i > 1 else ''}", row=1, col=i)
    fig.update_layout(title=html.escape(title), template="plotly_white", height=270,
                      width=max(420, 190 * len(labels)), margin={"t": 70, "l": 10, "r": 10, "b": 10})
    return fig
