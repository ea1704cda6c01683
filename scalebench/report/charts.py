"""Plotly figures of the tidy results: one function per view, each `(df, metric) -> Figure`.

Points are averaged over seeds; where a point has several seeds the error bars are ±1
standard deviation over seeds (latency with one seed shows its p10–p90 instead). Averages
refuse to mix n, dtype, device or dataset within a method (`check_homogeneous`). A value axis
is logarithmic when its values are positive and span more than a decade (FID 130 → 0.5),
and when the records carry a data floor (`metrics["<metric>_floor"]`, `..._floor_sd`) the
quality charts draw it as a grey band, mean ± `FLOOR_Z` sd, with a dotted line at the mean. Method
names are HTML-escaped before they reach Plotly, whose text renderer interprets a subset
of HTML: escaped, a generator called `<script>` is shown literally (Plotly decodes the
entities for display) and cannot inject markup; Plotly's JSON encoder additionally writes
`<`, `>` and `/` as \\u escapes, so no string can close the page's <script> tag.

Every method looks the same in every chart (`report.identity`: colour + marker + dash from the
registry order), and each method trace carries `meta = {"method", "identity"}` so a browser can check.

**Small multiples** (`quality_vs_K`, `quality_vs_S`, `latency_vs_K`, `latency_vs_S`): one panel per
family whose axis varies, in the seed's category order, sharing the axes (log where the values span
decades), each panel with its own data floor at its own n; one-shot baselines share one last panel.
**Frontiers** (`quality_vs_latency`, `quality_vs_flops`, `quality_vs_nfe`): every method in one chart,
at most `HIGHLIGHT` in full colour (those on the Pareto frontier first, then the best), the rest
faded; a legend click toggles a method's highlight (`meta.fade`, handled by the page's loader).

A point flagged by `scalebench.flags` (near-copies of training data, or collapse) is ringed in red
on the quality charts and is never part of the Pareto frontier: its good number is not a
trade-off anyone should pick. The data floor depends on the sample count n, so when a chart holds
methods measured at different n each method's legend name carries its n and each n's floor gets
its own band ("data floor … at n=500"), instead of one band silently standing for all.

A method measured at a single budget — the one-shot baselines whose card fixes both S and K
(VAE, GAN, flow: one network call per sample) — is drawn as one large outlined marker (its own
symbol), never a line, in its own legend group titled `ONE_SHOT_GROUP`, so the reader sees where
one-shot sampling sits against the scaling curves.

On the charts along S, a point whose generator reports the `api.STEPS_TAKEN` diagnostic (the mean
sequential steps a sample actually took, when they depend on the data: blockwise decoding) is placed
at that value instead of its nominal S (`s_coordinate`); the hover keeps the nominal S and K.

Text never overlaps at 1280–1920 px (the browser test measures it): step axes are labelled at
measured values thinned on the log scale (`thin_ticks`), panels wrap at `COLS` per row with room
for their titles, and long legends make the figure taller instead of scrolling.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from scalebench.api import SEED_CATEGORIES, STEPS_TAKEN
from scalebench.errors import ResultsError
from scalebench.metrics import METRICS
from scalebench.report.identity import Identity, family_order, frame_identities, sampler_key
from scalebench.report.table import check_homogeneous, check_metric, method_floor

SEED_NOTE = "error bars: ±1 s.d. over seeds"
POINT = ["generator", "sampler", "S", "K"]
FLOOR_Z = 2.0  # the band drawn is floor mean ± FLOOR_Z sd (DecisionRule.floor_z's default)
FLOOR_NAME = "data floor (real data, ±2 sd)"
DECADE = 10.0  # a value axis goes logarithmic when max/min of the plotted values exceeds this
ONE_SHOT_GROUP = "one-shot (S, K fixed)"
CURVE_MODE = "lines+markers"
ONE_SHOT_RANK = 2000  # after every other legend entry (Plotly's default rank is 1000), so no curve is listed
#                       under the one-shot heading
HIGHLIGHT = 10  # at most this many methods in full colour on a frontier chart
FADED = 0.18  # opacity of the others (a legend click brings one back)
COLS = 4  # small-multiple panels per row
PANEL_H, PANEL_GAP = 190, 72  # px: a panel's height, and the room between rows (its title + the ticks above)
LEGEND_ROW = 24  # px per legend entry (with its group gap): a figure is at least as tall as its legend
NOTE_RANK = 1500  # floor bands, flag rings and the frontier: listed after the methods, before the one-shot group
MAX_TICKS = 6  # labelled values on a step axis
TEMPLATE = "plotly_white"
ONE_SHOT_PANEL = "one-shot (S, K fixed)"
VALUE_SCALE = {"latency_s": (1e3, "latency per sample [ms]"),
               "peak_mem_bytes": (1e-6, "peak memory per batch [MB]")}


def one_shot_methods(points: pd.DataFrame) -> set[str]:
    """Methods (the `method` column) measured at exactly one (S, K) budget: the one-shot baselines."""
    if points.empty:
        return set()
    n = points.groupby("method")[["S", "K"]].apply(lambda p: len(p.drop_duplicates()))
    return {str(m) for m, k in n.items() if k == 1}


def trace_style(ident: Identity, one_shot: bool, n_points: int, curve: bool = True) -> dict:
    """Scatter keywords of one method's trace in its identity: a big outlined marker in the one-shot legend
    group for a single-budget method; otherwise `CURVE_MODE` (markers only for one point or when `curve` is
    False)."""
    if one_shot:
        return {"mode": "markers", "legendgroup": ONE_SHOT_GROUP, "showlegend": True, "legendrank": ONE_SHOT_RANK,
                "marker": {**ident.marker_style(14), "line": {"color": "#222", "width": 1}},
                "line": ident.line()}
    return {"mode": CURVE_MODE if curve and n_points > 1 else "markers", "showlegend": True,
            "marker": ident.marker_style(8), "line": ident.line()}


def method_meta(generator: object, sampler: object, ident: Identity, fade: bool | None = None) -> dict:
    """`meta` of a method's trace: its name and identity (the browser test checks one identity per method);
    `fade` marks a trace whose highlight a legend click toggles."""
    meta = {"method": f"{generator}/{sampler_key(sampler)}", "identity": [ident.colour, ident.marker, ident.dash]}
    if fade is not None:
        meta["fade"] = fade
    return meta


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


def thin_ticks(values: Iterable[float], max_ticks: int = MAX_TICKS) -> list[float]:
    """Measured step counts to label on a log axis, at least 1/`max_ticks` of the span apart (in log10), so
    neighbours such as 14, 15, 16 do not collide: the smallest and largest are always kept."""
    vals = sorted({float(round(v)) for v in values if v is not None and np.isfinite(v) and v > 0})
    if len(vals) <= 2:
        return vals
    gap = math.log10(vals[-1] / vals[0]) / max_ticks
    kept = [vals[0]]
    for v in vals[1:-1]:
        if math.log10(v / kept[-1]) >= gap and math.log10(vals[-1] / v) >= gap:
            kept.append(v)
    return kept + [vals[-1]]


SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def tick_text(v: float) -> str:
    """A tick label: 0.02, 5, 300, 2k, 10G (SI prefixes from a thousand up)."""
    for size, prefix in SI:
        if abs(v) >= size:
            return f"{v / size:g}{prefix}"
    return f"{v:g}"


def log_ticks(values: Iterable[float], max_ticks: int = 7) -> dict:
    """Explicit ticks of a log value axis: 1-2-5 per decade, else 1-3, else decades (every k-th), so Plotly's
    minor digit labels ("8 9 1 2") never crowd a small panel. {} when there is nothing positive to label."""
    v = [float(x) for x in values if x is not None and np.isfinite(x) and x > 0]
    if not v:
        return {}
    lo, hi = min(v) / 1.3, max(v) * 1.3
    e0, e1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for mults in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0 ** e for e in range(e0, e1 + 1) for m in mults if lo <= m * 10.0 ** e <= hi]
        if 2 <= len(ticks) <= max_ticks:
            break
    else:
        step = max(1, math.ceil((e1 - e0 + 1) / max_ticks))
        ticks = [10.0 ** e for e in range(e0, e1 + 1, step)]
    return {"tickvals": ticks, "ticktext": [tick_text(t) for t in ticks]}


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


def _floor_name(found: list[tuple[float, float, int | None]], i: int) -> str:
    ns = [n for _, _, n in found]
    if len(found) == 1:
        return FLOOR_NAME
    if None not in ns and len(set(ns)) == len(ns):
        return f"{FLOOR_NAME} at n={ns[i]}"
    return f"{FLOOR_NAME} #{i + 1}"


def _band_traces(mean: float, sd: float, n: int | None, x0: float, x1: float, name: str, alpha: float,
                 show: bool, scale: float = 1.0) -> list[go.Scatter]:
    lo, hi = (mean - FLOOR_Z * sd) * scale, (mean + FLOOR_Z * sd) * scale
    return [go.Scatter(x=[x0, x1, x1, x0, x0], y=[lo, lo, hi, hi, lo], fill="toself", mode="lines", name=name,
                       fillcolor=f"rgba(120,120,120,{alpha})", line={"width": 0}, hoverinfo="skip",
                       legendgroup=name, showlegend=show, legendrank=NOTE_RANK),
            go.Scatter(x=[x0, x1], y=[mean * scale] * 2, mode="lines", line={"color": "#555", "dash": "dot", "width": 1},
                       name=f"floor {mean:.3g} ± {sd:.2g}", legendgroup=name, showlegend=False,
                       hovertemplate=f"data floor{f' at n={n}' if n else ''} {mean:.4g} ± {sd:.3g} (±{FLOOR_Z:g} sd "
                                     "band)<extra></extra>")]


def add_floor_band(fig: go.Figure, df: pd.DataFrame, metric: str, x: Iterable[float]) -> list[tuple[float, float]]:
    """Draw each distinct floor of `metric` as a band (mean ± FLOOR_Z sd) across the x range, named by its n
    when the chart holds several sample sizes."""
    xs = [float(v) for v in x if v is not None and np.isfinite(v) and v > 0]
    found = floors_by_n(df, metric)
    if xs and found:
        for i, (mean, sd, n) in enumerate(found):
            for tr in _band_traces(mean, sd, n, min(xs), max(xs), _floor_name(found, i),
                                   0.22 if len(found) == 1 else 0.14, True):
                fig.add_trace(tr)
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


def _legend_height(fig: go.Figure) -> int:
    """px a vertical legend of this figure needs (one row per shown entry, plus group titles)."""
    shown = [tr for tr in fig.data if tr.showlegend is not False and tr.name]
    groups = {tr.legendgroup for tr in shown if tr.legendgrouptitle and tr.legendgrouptitle.text}
    return LEGEND_ROW * (len(shown) + len(groups)) + 40


def _layout(fig: go.Figure, title: str, x: str, y: str, logx: bool = False, logy: bool = False,
            height: int = 460) -> go.Figure:
    _title_one_shot_group(fig)
    fig.update_layout(title=html.escape(title), template=TEMPLATE,
                      height=max(height, _legend_height(fig) + 110),
                      legend={"title": {"text": "method"}, "groupclick": "toggleitem", "tracegroupgap": 3},
                      margin={"t": 60, "l": 70, "r": 20, "b": 60})
    fig.update_xaxes(title_text=html.escape(x), type="log" if logx else "linear")
    fig.update_yaxes(title_text=html.escape(y), type="log" if logy else "linear")
    return fig


def _metric_title(metric: str) -> str:
    spec = METRICS[metric]
    if metric in VALUE_SCALE:
        return VALUE_SCALE[metric][1]
    unit = f" [{spec.unit}]" if spec.unit else ""
    return f"{metric}{unit} ({spec.better} is better)"


def aggregate(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per point (generator, sampler, S, K): mean/sd/n over seeds of `metric` and mean costs."""
    ok = df[(df["status"] == "ok") & (df["metric"] == metric) & df["value"].notna()].copy()
    ok["sampler"] = ok["sampler"].fillna("default")
    check_homogeneous(ok, ["generator", "sampler"], "latencies" if metric == "latency_s" else f"{metric} values")
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


def _flag_trace(bad: pd.DataFrame, x: str, y: str, show: bool = True) -> go.Scatter:
    return go.Scatter(
        x=bad[x], y=bad[y], mode="markers", name=FLAG_NAME, legendgroup=FLAG_NAME, showlegend=show, legendrank=NOTE_RANK,
        marker={"symbol": "circle-open", "size": 18, "color": "#c00", "line": {"width": 3}},
        text=bad["method"] + " S=" + bad["S"].astype(str) + " K=" + bad["K"].astype(str) + ": " + bad["flagged"],
        hovertemplate="%{text}<extra>flagged</extra>")


def add_flag_markers(fig: go.Figure, points: pd.DataFrame, x: str, y: str = "mean") -> None:
    """Ring each flagged point in red, one legend entry: its good number may come from copying or collapse."""
    bad = points[points["flagged"] != ""]
    if not bad.empty:
        fig.add_trace(_flag_trace(bad, x, y))


def _err(sd: pd.Series, n: pd.Series, scale: float = 1.0) -> dict | None:
    arr = np.where(n.to_numpy() >= 2, sd.fillna(0).to_numpy(), 0.0) * scale
    return {"type": "data", "array": arr, "visible": True} if bool((n >= 2).any()) else None


def _latency_err(sl: pd.DataFrame, scale: float) -> dict:
    """s.d. over seeds, or the p10–p90 of the timing rounds with one seed."""
    if (sl["n"] >= 2).any():
        return {"type": "data", "array": sl["sd"].fillna(0) * scale, "visible": True}
    return {"type": "data", "symmetric": False, "array": (sl["latency_p90_s"] - sl["mean"]).clip(lower=0) * scale,
            "arrayminus": (sl["mean"] - sl["latency_p10_s"]).clip(lower=0) * scale, "visible": True}


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


def panel_order(df: pd.DataFrame, generators: Iterable[str]) -> list[str]:
    """Generators in the seed's category order, then registry order, then by name."""
    cats = df.dropna(subset=["generator"]).groupby("generator")["category"].first() if "category" in df.columns \
        else pd.Series(dtype=object)
    order = family_order()
    seed = [*SEED_CATEGORIES, "unknown"]

    def key(g: str) -> tuple:
        c = cats.get(g)
        return (seed.index(c) if c in seed else len(seed), order.index(g) if g in order else len(order), g)

    return sorted(set(generators), key=key)


def _same_floor(a: tuple[float, float, int | None], b: tuple[float, float, int | None]) -> bool:
    return math.isclose(a[0], b[0], rel_tol=1e-9) and math.isclose(a[1], b[1], rel_tol=1e-9, abs_tol=1e-12) \
        and a[2] == b[2]


def _panel_grid(n: int, cols: int = COLS) -> tuple[int, int]:
    c = max(1, min(cols, n))
    return math.ceil(n / c), c


def small_multiples(df: pd.DataFrame, metric: str, axis: str) -> go.Figure:
    """`metric` vs S or K, one panel per family whose `axis` varies (methods varying both at the other axis's
    largest value), plus one panel of the one-shot baselines; shared axes (log where values span decades),
    each panel with its own data floor at its own n."""
    from plotly.subplots import make_subplots

    if axis not in ("S", "K"):
        raise ValueError(f"axis={axis!r}; use 'S' or 'K'")
    scale, ytitle = VALUE_SCALE.get(metric, (1.0, _metric_title(metric)))
    agg = aggregate(df, metric)
    if agg.empty:
        raise ResultsError(f"the results hold no {metric} values (every point failed?)")
    ids = frame_identities(df)
    single = one_shot_methods(agg)
    agg["_x"] = s_coordinate(df, agg) if axis == "S" else agg[axis].astype(float)
    curves: dict[str, list[tuple[str, pd.DataFrame, str]]] = {}
    shots: list[tuple[str, pd.DataFrame, str]] = []
    for method, pts in agg.groupby("method", sort=True):
        if method in single:
            shots.append((method, pts, ""))
            continue
        sl, note = axis_slice(pts, axis)
        if sl[axis].nunique() >= 2:
            curves.setdefault(str(pts["generator"].iloc[0]), []).append((method, sl.sort_values("_x"), note))
    panels: list[tuple[str, list[tuple[str, pd.DataFrame, str]]]] = [
        (g, curves[g]) for g in panel_order(df, curves)]
    if shots:
        panels.append((ONE_SHOT_PANEL, shots))
    name = "refinement steps K" if axis == "K" else "sequence steps S"
    if not panels:
        return _no_panels(f"{metric} vs {name}", f"no method varies {axis} in these results")
    ok = df[(df["status"] == "ok")]
    found_all: dict[str, list[tuple[float, float, int | None]]] = {}
    for g, items in panels:
        gens = {str(p["generator"].iloc[0]) for _, p, _ in items}
        found_all[g] = floors_by_n(ok[ok["generator"].isin(gens)], metric)
    distinct: list[tuple[float, float, int | None]] = []
    for f in (f for fs in found_all.values() for f in fs):
        if not any(_same_floor(f, d) for d in distinct):
            distinct.append(f)
    rows, cols = _panel_grid(len(panels))
    plot_h = rows * PANEL_H + (rows - 1) * PANEL_GAP
    means = [v * scale for _, items in panels for _, p, _ in items for v in p["mean"]]
    logy = log_axis(means + [m * scale for m, _, _ in distinct])
    shared_y = logy or not log_axis([abs(v) for v in means if v])  # apart only when linear values span decades
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[html.escape(g) for g, _ in panels],
                        horizontal_spacing=0.035 if shared_y else 0.07,
                        vertical_spacing=PANEL_GAP / plot_h if rows > 1 else 0.1)
    shown: set[str] = set()
    xs_all = [float(v) for _, items in panels for _, p, _ in items for v in p["_x"]]
    for i, (g, items) in enumerate(panels):
        r, c = divmod(i, cols)
        for mean, sd, n in found_all[g]:  # across the shared x range: a level to read each curve against
            band = _floor_name(distinct, next(i for i, d in enumerate(distinct) if _same_floor((mean, sd, n), d)))
            for tr in _band_traces(mean, sd, n, min(xs_all), max(xs_all), band, 0.22 if len(distinct) == 1 else 0.16,
                                   band not in shown, scale):
                fig.add_trace(tr, row=r + 1, col=c + 1)
            shown.add(band)
        for method, p, note in items:
            gen, sampler = str(p["generator"].iloc[0]), str(p["sampler"].iloc[0])
            ident = ids[(gen, sampler_key(sampler))]
            err = _latency_err(p, scale) if metric == "latency_s" else _err(p["sd"], p["n"], scale)
            fig.add_trace(go.Scatter(
                x=p["_x"], y=p["mean"] * scale, error_y=err, name=method + html.escape(note),
                **trace_style(ident, g == ONE_SHOT_PANEL, len(p)), meta=method_meta(gen, sampler, ident),
                customdata=np.stack([p["S"], p["K"], p["n"]], axis=-1),
                hovertemplate=f"{method}<br>S=%{{customdata[0]}} K=%{{customdata[1]}}<br>%{{y:.4g}} "
                              "(%{customdata[2]} seeds)<extra></extra>"), row=r + 1, col=c + 1)
        bad = pd.concat([p for _, p, _ in items])
        bad = bad[bad["flagged"] != ""]
        if not bad.empty:
            fig.add_trace(_flag_trace(bad.assign(mean=bad["mean"] * scale), "_x", "mean", FLAG_NAME not in shown),
                          row=r + 1, col=c + 1)
            shown.add(FLAG_NAME)
        fig.update_yaxes(title_text=html.escape(ytitle) if c == 0 else None, type="log" if logy else "linear",
                         showticklabels=c == 0 or not shared_y, row=r + 1, col=c + 1)
    ticks = thin_ticks(xs_all)
    fig.update_xaxes(type="log", tickvals=ticks, ticktext=[f"{v:g}" for v in ticks], matches="x")
    if shared_y:
        fig.update_yaxes(matches="y")
    if logy:
        fig.update_yaxes(**log_ticks(means + [(m + k * FLOOR_Z * sd) * scale for m, sd, _ in distinct
                                              for k in (-1, 1)], max_ticks=6))
    _title_one_shot_group(fig)
    note = "; error bars: s.d. over seeds, or p10–p90 with one seed" if metric == "latency_s" else f"; {SEED_NOTE}"
    fig.update_layout(title=html.escape(f"{ytitle if metric in VALUE_SCALE else metric} vs {name}, one panel per "
                                        f"family{note}"),
                      template=TEMPLATE, height=max(plot_h + 130, _legend_height(fig) + 110),
                      legend={"title": {"text": "method"}, "groupclick": "toggleitem", "tracegroupgap": 3},
                      margin={"t": 80, "l": 70, "r": 20, "b": 50})
    for a in fig.layout.annotations:  # the panel titles: a little smaller than the axis titles
        a.font = {"size": 13}
    return fig


def _no_panels(title: str, text: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=html.escape(text), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, "", "", height=200)


def quality_vs_axis(df: pd.DataFrame, metric: str | None = None, axis: str = "K") -> go.Figure:
    """Quality vs S or K: small multiples, one panel per family (`small_multiples`)."""
    return small_multiples(df, check_metric(df, metric), axis)


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


def highlighted(agg: pd.DataFrame, front: pd.DataFrame, better: str, k: int = HIGHLIGHT) -> list[str]:
    """The ≤ k methods a frontier chart draws in full colour: those with a point on the Pareto frontier
    (cheapest first), then the others by their best value."""
    out = list(dict.fromkeys(front.sort_values(front.columns[0])["method"])) if len(front) else []
    best = agg.groupby("method")["mean"].agg("max" if better == "higher" else "min")
    rest = best.drop(labels=out, errors="ignore").sort_values(ascending=better != "higher")
    return (out + list(rest.index))[:k]


def quality_vs_cost(df: pd.DataFrame, metric: str | None = None, cost: str = "nfe",
                    pareto: bool = False) -> go.Figure:
    """Quality vs a cost column (log x), every grid point, all methods in one chart: at most `HIGHLIGHT` in
    full colour (on the frontier first), the rest faded; optionally the Pareto frontier across methods."""
    if cost not in COSTS:
        raise ValueError(f"cost={cost!r}; use one of {list(COSTS)}")
    metric = check_metric(df, metric)
    agg = aggregate(df, metric)
    ids = frame_identities(df)
    single = one_shot_methods(agg)
    agg = agg[agg[cost].notna() & (agg[cost] > 0)].copy()
    f = SCALE.get(cost, 1.0)
    agg[cost], agg[cost + "_sd"] = agg[cost] * f, agg[cost + "_sd"] * f
    clean = agg[agg["flagged"] == ""]  # a copier or a collapsed point is never drawn as the frontier
    front = clean.iloc[pareto_front(clean[cost].to_numpy(float), clean["mean"].to_numpy(float),
                                    METRICS[metric].better)] if len(clean) else clean
    bright = set(highlighted(agg, front[[cost, "method"]], METRICS[metric].better))
    fig = go.Figure()
    for method, pts in agg.groupby("method", sort=True):
        both = pts["S"].nunique() > 1 and pts["K"].nunique() > 1
        pts = pts.sort_values(cost)
        gen, sampler = str(pts["generator"].iloc[0]), str(pts["sampler"].iloc[0])
        ident = ids[(gen, sampler_key(sampler))]
        fig.add_trace(go.Scatter(
            x=pts[cost], y=pts["mean"], error_y=_err(pts["sd"], pts["n"]), name=method, opacity=1.0 if method in bright else FADED,
            **trace_style(ident, method in single, len(pts), curve=not both),
            meta=method_meta(gen, sampler, ident, fade=method not in bright),
            customdata=np.stack([pts["S"], pts["K"], pts["n"]], axis=-1),
            hovertemplate=f"{method}<br>S=%{{customdata[0]}} K=%{{customdata[1]}}<br>cost %{{x:.4g}}<br>%{{y:.4g}} "
                          "(%{customdata[2]} seeds)<extra></extra>"))
    add_flag_markers(fig, agg, cost)
    if pareto and len(front):
        fig.add_trace(go.Scatter(x=front[cost], y=front["mean"], name="Pareto frontier", mode="lines", legendrank=NOTE_RANK,
                                 line={"color": "rgba(0,0,0,0.6)", "dash": "dot", "shape": "hv", "width": 3},
                                 text=front["method"] + " S=" + front["S"].astype(str) + " K=" + front["K"].astype(str),
                                 hovertemplate="%{text}<br>cost %{x:.4g}<br>%{y:.4g}<extra>frontier</extra>"))
    suffix = " with the Pareto frontier across methods" if pareto else ""
    found = add_floor_band(fig, df, metric, agg[cost])
    _layout(fig, f"{metric} vs {COSTS[cost]}{suffix}", COSTS[cost], _metric_title(metric), logx=True, height=520)
    fig.update_layout(legend={"title": {"text": f"method ({min(HIGHLIGHT, len(bright))} highlighted; "
                                                "click to toggle)"}})
    fig.update_xaxes(**log_ticks(agg[cost], max_ticks=10))
    if _quality_log(fig, agg["mean"], found):
        fig.update_yaxes(**log_ticks(list(agg["mean"]) + [m + k * FLOOR_Z * sd for m, sd in found for k in (-1, 1)]))
    return fig


def quality_vs_nfe(df: pd.DataFrame, metric: str | None = None) -> go.Figure:
    return quality_vs_cost(df, metric, "nfe")


def quality_vs_flops(df: pd.DataFrame, metric: str | None = None) -> go.Figure:
    return quality_vs_cost(df, metric, "flops", pareto=True)


def quality_vs_latency(df: pd.DataFrame, metric: str | None = None) -> go.Figure:
    return quality_vs_cost(df, metric, "latency_s", pareto=True)


def both_axes_methods(agg: pd.DataFrame) -> list[str]:
    return [m for m, p in agg.groupby("method", sort=True) if p["S"].nunique() > 1 and p["K"].nunique() > 1]


def _no_both_axes(title: str) -> go.Figure:
    """The placeholder of the both-axes charts when no method varies S and K together."""
    return _no_panels(title, "no method varies both S and K in these results")


def _grid_layout(n: int, row_h: int, gap: int) -> dict:
    """make_subplots keywords for n panels at ≤ 3 per row with `gap` px between rows."""
    rows, cols = _panel_grid(n, 3)
    plot_h = rows * row_h + (rows - 1) * gap
    return {"rows": rows, "cols": cols, "vertical_spacing": gap / plot_h if rows > 1 else 0.1,
            "horizontal_spacing": 0.08}


def sk_heatmap(df: pd.DataFrame, metric: str | None = None) -> go.Figure:
    """S × K heatmap of quality for each method that varies both axes (brighter = better), one colour scale."""
    from plotly.subplots import make_subplots

    metric = check_metric(df, metric)
    agg = aggregate(df, metric)
    methods = both_axes_methods(agg)
    if not methods:
        return _no_both_axes(f"{metric} over S × K")
    grid = _grid_layout(len(methods), 230, 80)
    fig = make_subplots(subplot_titles=methods, **grid)
    logz = log_axis(agg.loc[agg["method"].isin(methods), "mean"])
    for i, m in enumerate(methods):
        r, c = divmod(i, grid["cols"])
        wide = agg[agg["method"] == m].pivot_table(index="S", columns="K", values="mean")
        z = wide.to_numpy(dtype=float)
        fig.add_trace(go.Heatmap(
            z=np.log10(z) if logz else z, text=[["" if np.isnan(v) else f"{v:.3g}" for v in row] for row in z],
            x=[str(k) for k in wide.columns], y=[str(s) for s in wide.index], coloraxis="coloraxis",
            texttemplate="%{text}", name=m, hovertemplate="S=%{y} K=%{x}<br>%{text}<extra>" + m + "</extra>"),
            row=r + 1, col=c + 1)
        fig.update_xaxes(title_text="K", type="category", row=r + 1, col=c + 1)
        fig.update_yaxes(title_text="S", type="category", row=r + 1, col=c + 1)
    fig.update_layout(title=html.escape(f"{metric} over S × K (mean over seeds; brighter is better)"),
                      coloraxis={"colorscale": "Viridis", "reversescale": METRICS[metric].better == "lower",
                                 "colorbar": {"title": {"text": f"log10 {html.escape(metric)}" if logz
                                                        else html.escape(metric)}}},
                      template=TEMPLATE, height=grid["rows"] * 230 + (grid["rows"] - 1) * 80 + 140,
                      margin={"t": 80, "l": 60, "r": 20, "b": 60})
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
    titles = [f"{m}<br>{html.escape(exchange_verdict(ex, m))}" for m in methods]
    grid = _grid_layout(len(methods), 240, 100)
    fig = make_subplots(subplot_titles=titles, **grid)
    shades = {"S": ("#b5cdee", "#6a9bd8", "#1f4e9c"), "K": ("#f6c49c", "#ec8a3c", "#b3400c")}  # light → dark
    logy = log_axis(agg.loc[agg["method"].isin(methods), "mean"])
    for i, m in enumerate(methods):
        r, c = divmod(i, grid["cols"])
        pts = agg[(agg["method"] == m) & agg["nfe"].notna() & (agg["nfe"] > 0)]
        for axis, other, dash in (("S", "K", "solid"), ("K", "S", "dash")):
            slices = [(b, sl) for b, sl in pts.groupby(other, sort=True) if sl[axis].nunique() >= 2]
            for j, (b, sl) in enumerate(slices):
                sl = sl.sort_values("nfe")
                shade = shades[axis][min(j * len(shades[axis]) // max(len(slices), 1), len(shades[axis]) - 1)]
                fig.add_trace(go.Scatter(
                    x=sl["nfe"], y=sl["mean"], mode="lines+markers", line={"color": shade, "dash": dash},
                    name=html.escape(f"{m}: {axis} varies, {other}={int(b)}"), legendgroup=m, showlegend=False,
                    customdata=np.stack([sl["S"], sl["K"], sl["n"]], axis=-1),
                    hovertemplate=html.escape(f"{axis} varies at {other}={int(b)}") +
                    "<br>S=%{customdata[0]} K=%{customdata[1]}<br>NFE %{x:.4g}<br>%{y:.4g} (%{customdata[2]} seeds)"
                    "<extra></extra>"), row=r + 1, col=c + 1)
        fig.update_xaxes(title_text="total NFE", type="log", row=r + 1, col=c + 1, **log_ticks(pts["nfe"], 5))
        fig.update_yaxes(title_text=html.escape(metric) if c == 0 else None, type="log" if logy else "linear",
                         row=r + 1, col=c + 1, **(log_ticks(pts["mean"], 5) if logy else {}))
    fig.update_layout(title=html.escape(f"{metric} vs total NFE (S × K calls): solid = more S at fixed K, dashed = "
                                        "more K at fixed S; darker = larger fixed axis"),
                      template=TEMPLATE, height=grid["rows"] * 240 + (grid["rows"] - 1) * 100 + 160,
                      margin={"t": 110, "l": 60, "r": 20, "b": 60})
    for a in fig.layout.annotations:
        a.font = {"size": 12}
    return fig


def latency_vs_axis(df: pd.DataFrame, axis: str = "K") -> go.Figure:
    """Latency per sample vs S or K: small multiples per family, log–log; bars are s.d. over seeds, or p10–p90
    with one seed."""
    if axis not in ("S", "K"):
        raise ValueError(f"axis={axis!r}; use 'S' or 'K'")
    ok = df[(df["status"] == "ok") & (df["metric"] == "latency_s") & df["value"].notna()]
    if ok.empty:
        raise ResultsError("the results hold no latency values (every point failed?)")
    return small_multiples(df, "latency_s", axis)


def latency_vs_S(df: pd.DataFrame) -> go.Figure:
    return latency_vs_axis(df, "S")


def latency_vs_K(df: pd.DataFrame) -> go.Figure:
    return latency_vs_axis(df, "K")
