"""`scalebench history STORE --out site/`: the store as one self-contained static page.

One page because the report's Content-Security-Policy (no fetch, no external script) means
plotly.js must be inlined, and inlined once: a summary of regressions and improvements with the
commit range of each, an index with one row per point (latest latency and quality, a sparkline,
its detected steps), overview charts, and a panel per point (latency median with its p10–p90
band and the quality metrics over commits; hover names commit, date and subject; a click opens
that commit's full report where the site has one). Panels draw their charts when opened.
Every user string (generator, sampler, spec, machine, commit subject) goes through `html.escape`.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import plotly.graph_objects as go

from scalebench.atomic import atomic_write_text
from scalebench.history.series import Finding, PointHistory, histories
from scalebench.history.steps import PENALTY, THRESHOLD
from scalebench.history.store import Entry, entries, order_key
from scalebench.report.html import CSP, PLOTLY_CONFIG, STYLE, esc

RED, GREEN, BLUE = "#a11", "#176b1d", "#1f77b4"

EXTRA_STYLE = """
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.regression,span.regression{color:#a11;font-weight:600}td.improvement,span.improvement{color:#176b1d;font-weight:600}
details.point{border:1px solid #ddd;border-radius:4px;margin:8px 0;padding:4px 10px}
details.point>summary{cursor:pointer;font-weight:600}svg.spark{vertical-align:middle}
table.grid tr:target{background:#fff8d6}
"""

LOADER = """
(function(){
  var done={}, errors=[];
  window.scalebenchChartErrors=errors;
  function draw(id){
    if(done[id]) return; done[id]=true;
    var div=document.getElementById('chart-'+id);
    var fig=JSON.parse(document.getElementById('data-'+id).textContent);
    Plotly.newPlot(div,fig.data||[],fig.layout||{},CONFIG).then(function(){
      div.on('plotly_click',function(ev){var c=ev.points[0].customdata; if(c&&c[3]) window.location.href=c[3];});
      div.setAttribute('data-drawn','1');
    }).catch(function(e){errors.push(id+': '+e);console.error(e);});
  }
  function open(p){p.open=true;p.querySelectorAll('div.plotly-chart').forEach(function(d){draw(d.getAttribute('data-chart'));});}
  document.querySelectorAll('details.point').forEach(function(p){
    p.addEventListener('toggle',function(){if(p.open) open(p);});
  });
  function fromHash(){
    var el=location.hash.length>1&&document.getElementById(location.hash.slice(1));
    if(el&&el.tagName==='DETAILS'){open(el);el.scrollIntoView();}
  }
  window.addEventListener('hashchange',fromHash);
  document.querySelectorAll('div.plotly-chart.eager').forEach(function(d){draw(d.getAttribute('data-chart'));});
  fromHash();
  window.scalebenchOpen=function(key){open(document.getElementById('p-'+key));};
})();
"""


def _chart(cid: str, fig: go.Figure, eager: bool = False) -> str:
    payload = fig.to_json()  # plotly writes <, >, / as \\u escapes
    if re.search(r"</", payload, re.I):
        raise ValueError(f"figure {cid} JSON contains '</'; refusing to embed it")
    cls = "plotly-chart eager" if eager else "plotly-chart"
    return (f'<div class="{cls}" id="chart-{esc(cid)}" data-chart="{esc(cid)}"></div>'
            f'<script type="application/json" id="data-{esc(cid)}">{payload}</script>')


def _fmt_latency(v: float | None, normalized: bool) -> str:
    if v is None or not math.isfinite(v):
        return "—"
    return f"{v:.3g}×cal" if normalized else f"{v * 1e3:.4g} ms"


def _pct(change: float) -> str:
    return f"{change * 100:+.1f} %"


def _hover(ph: PointHistory, reports: dict[Path, str]) -> list[list[str]]:
    return [[r.entry.commit, r.entry.date, r.entry.subject[:120], reports.get(r.entry.path, "")] for r in ph.runs]


HOVER = ("commit %{customdata[0]}<br>%{customdata[1]}<br>%{customdata[2]}<br>"
         "%{fullData.name}: %{y:.4g}<extra></extra>")


def _step_shapes(fig: go.Figure, findings: Sequence[Finding], metric: str, row: int | None = None) -> None:
    for f in findings:
        if f.metric != metric:
            continue
        colour = RED if f.kind == "regression" else GREEN
        kw = {"row": row, "col": 1} if row else {}
        fig.add_vline(x=f.step.index - 0.5, line={"color": colour, "dash": "dash", "width": 1.5},
                      annotation_text=f"{f.kind} {_pct(f.step.change)}", annotation_font_color=colour, **kw)


def latency_figure(ph: PointHistory, reports: dict[Path, str], normalized: bool) -> go.Figure:
    x = list(range(len(ph.runs)))
    ticks = [r.entry.short[:7] for r in ph.runs]
    scale = 1.0 if normalized else 1e3
    unit = "latency ÷ calibration" if normalized else "ms per sample"
    med = [None if r.latency is None else r.latency * scale for r in ph.runs]
    hi = [None if r.p90 is None else r.p90 * scale for r in ph.runs]
    lo = [None if r.p10 is None else r.p10 * scale for r in ph.runs]
    custom = _hover(ph, reports)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=hi, mode="lines", line={"width": 0}, name="p90", customdata=custom,
                             hovertemplate=HOVER, showlegend=False))
    fig.add_trace(go.Scatter(x=x, y=lo, mode="lines", line={"width": 0}, fill="tonexty",
                             fillcolor="rgba(31,119,180,0.18)", name="p10–p90", customdata=custom,
                             hovertemplate=HOVER))
    fig.add_trace(go.Scatter(x=x, y=med, mode="lines+markers", line={"color": BLUE}, name="median",
                             customdata=custom, hovertemplate=HOVER))
    _step_shapes(fig, ph.findings, "latency_s")
    fig.update_layout(height=320, margin={"l": 60, "r": 20, "t": 30, "b": 40}, yaxis_title=unit,
                      xaxis={"tickmode": "array", "tickvals": x, "ticktext": ticks, "title": "commit (oldest → newest)"},
                      title={"text": f"latency — {ph.label}", "font": {"size": 13}}, hovermode="closest")
    return fig


def quality_figure(ph: PointHistory, reports: dict[Path, str]) -> go.Figure | None:
    names = ph.metric_names()
    if not names:
        return None
    from plotly.subplots import make_subplots

    x = list(range(len(ph.runs)))
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[f"{m} ({ph.better.get(m, 'lower')} is better)" for m in names])
    custom = _hover(ph, reports)
    for i, m in enumerate(names, start=1):
        fig.add_trace(go.Scatter(x=x, y=[None if not math.isfinite(v) else v for v in ph.values(m)],
                                 mode="lines+markers", name=m, customdata=custom, hovertemplate=HOVER),
                      row=i, col=1)
        _step_shapes(fig, ph.findings, m, row=i)
    fig.update_xaxes(tickmode="array", tickvals=x, ticktext=[r.entry.short[:7] for r in ph.runs])
    fig.update_layout(height=max(220, 170 * len(names)), margin={"l": 60, "r": 20, "t": 40, "b": 40},
                      showlegend=False, hovermode="closest")
    return fig


def overview_figure(points: Sequence[PointHistory], machine: str, spec: str) -> go.Figure:
    """Each point's latency relative to its median over the whole history, on one commit axis."""
    commits: dict[str, Entry] = {}
    for ph in points:
        for r in ph.runs:
            commits.setdefault(r.entry.commit, r.entry)
    order = sorted(commits.values(), key=order_key)
    pos = {e.commit: i for i, e in enumerate(order)}
    fig = go.Figure()
    for ph in points:
        vals = [r.latency for r in ph.runs if r.latency]
        if not vals:
            continue
        ref = sorted(vals)[len(vals) // 2]
        fig.add_trace(go.Scatter(
            x=[pos[r.entry.commit] for r in ph.runs], y=[r.latency / ref if r.latency else None for r in ph.runs],
            mode="lines+markers", name=ph.label, customdata=[[r.entry.commit, r.entry.date, r.entry.subject[:120], ""]
                                                             for r in ph.runs], hovertemplate=HOVER))
    fig.add_hline(y=1.0, line={"color": "#888", "width": 1})
    fig.update_layout(height=360, margin={"l": 60, "r": 20, "t": 40, "b": 40},
                      title={"text": f"latency ÷ the point's median over the history — {machine}, {spec}",
                             "font": {"size": 13}},
                      yaxis_title="relative latency", hovermode="closest",
                      xaxis={"tickmode": "array", "tickvals": list(pos.values()),
                             "ticktext": [e.short[:7] for e in order], "title": "commit (oldest → newest)"})
    return fig


def sparkline(values: Sequence[float], marks: Sequence[tuple[int, str]] = (), w: int = 120, h: int = 26) -> str:
    """A tiny inline SVG polyline (no script, no request), steps marked as dots."""
    pts = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if len(pts) < 2:
        return ""
    lo, hi = min(v for _, v in pts), max(v for _, v in pts)
    span, n = (hi - lo) or 1.0, max(len(values) - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return 2 + (w - 4) * i / n, h - 3 - (h - 6) * (v - lo) / span

    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, v) for i, v in pts))
    dots = "".join(f'<circle cx="{xy(i, values[i])[0]:.1f}" cy="{xy(i, values[i])[1]:.1f}" r="2.5" fill="{c}"/>'
                   for i, c in marks if values[i] is not None and math.isfinite(values[i]))
    return (f'<svg class="spark" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="trend">'
            f'<polyline fill="none" stroke="{BLUE}" stroke-width="1.4" points="{line}"/>{dots}</svg>')


def _finding_text(f: Finding) -> str:
    return (f'<span class="{f.kind}">{esc(f.kind)} {esc(_pct(f.step.change))}</span> '
            f"{esc(f.metric)} at {esc(f.first.short[:7])}")


def _summary_html(points: Sequence[PointHistory], normalized: bool) -> str:
    rows = [(ph, f) for ph in points for f in ph.findings]
    if not rows:
        return '<p id="no-findings">No step in any point\'s latency or quality: nothing regressed or improved.</p>'
    rows.sort(key=lambda t: order_key(t[1].first), reverse=True)
    body = []
    for ph, f in rows:
        unit = (lambda v: _fmt_latency(v, normalized)) if f.metric == "latency_s" else (lambda v: f"{v:.4g}")
        body.append(
            f'<tr><td class="{f.kind}">{esc(f.kind)}</td><td><a href="#p-{esc(ph.key)}">{esc(ph.label)}</a></td>'
            f"<td>{esc(ph.machine)}</td><td>{esc(ph.spec)}</td><td>{esc(f.metric)}</td>"
            f'<td class="num">{esc(_pct(f.step.change))}</td><td class="num">{esc(unit(f.step.before))} → '
            f"{esc(unit(f.step.after))}</td><td><code>{esc(f.range)}</code></td><td>{esc(f.first.date)}</td>"
            f"<td>{esc(f.first.subject[:100])}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("", "point", "machine", "spec", "metric", "change", "level",
                                             "commit range", "date", "first commit at the new level"))
    return f'<table id="findings" class="grid"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _index_html(points: Sequence[PointHistory], normalized: bool) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("point", "generator", "sampler", "S", "K", "device", "machine", "spec",
                                             "commits", "latest latency", "trend", "latest quality", "detected"))
    body = []
    for ph in points:
        s = ph.settings
        last = ph.runs[-1]
        lat = ph.values("latency_s")
        marks = [(f.step.index, RED if f.kind == "regression" else GREEN) for f in ph.findings if f.metric == "latency_s"]
        names = ph.metric_names()
        quality = next(((m, r.metrics[m]) for r in reversed(ph.runs) for m in names if m in r.metrics), None)
        q = f"{esc(quality[0])} {quality[1]:.4g}" if quality else "—"
        found = "<br>".join(_finding_text(f) for f in ph.findings[-3:]) or "none"
        body.append(
            f'<tr id="row-{esc(ph.key)}"><td><a href="#p-{esc(ph.key)}">{esc(ph.label)}</a></td>'
            f"<td>{esc(s.get('generator'))}</td><td>{esc(s.get('sampler'))}</td><td>{esc(s.get('S'))}</td>"
            f"<td>{esc(s.get('K'))}</td><td>{esc(s.get('device'))}</td><td>{esc(ph.machine)}</td>"
            f'<td>{esc(ph.spec)}</td><td class="num">{len(ph.runs)}</td>'
            f'<td class="num">{esc(_fmt_latency(last.latency, normalized))}</td><td>{sparkline(lat, marks)}</td>'
            f"<td>{q}</td><td>{found}</td></tr>")
    return f'<table id="index" class="grid"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _panels_html(points: Sequence[PointHistory], reports: dict[Path, str], normalized: bool) -> str:
    out = []
    for ph in points:
        parts = [_chart(f"lat-{ph.key}", latency_figure(ph, reports, normalized))]
        qf = quality_figure(ph, reports)
        if qf is not None:
            parts.append(_chart(f"q-{ph.key}", qf))
        s = ph.settings
        meta = (f"machine {esc(ph.machine)} · spec {esc(ph.spec)} · device {esc(s.get('device'))} · "
                f"dtype {esc(s.get('dtype'))} · threads {esc(s.get('threads'))} · batch {esc(s.get('batch_size'))}"
                + (" · compiled" if s.get("compile") else ""))
        found = "; ".join(_finding_text(f) + f" (<code>{esc(f.range)}</code>)" for f in ph.findings) or "no step detected"
        out.append(f'<details class="point" id="p-{esc(ph.key)}"><summary>{esc(ph.label)} — {esc(ph.machine)}, '
                   f'{esc(ph.spec)}</summary><p class="note">{meta}. Steps: {found}.</p>{"".join(parts)}</details>')
    return "".join(out)


def _commits_html(all_entries: Sequence[Entry], reports: dict[Path, str]) -> str:
    rows = []
    for e in sorted(all_entries, key=lambda e: (e.machine, e.spec, *order_key(e)), reverse=True):
        link = f'<a href="{esc(reports[e.path])}">report</a>' if e.path in reports else "—"
        cal = f"{e.calibration_s * 1e3:.3f} ms" if e.calibration_s else "—"
        rows.append(f"<tr><td><code>{esc(e.commit)}</code></td><td>{esc(e.date)}</td><td>{esc(e.subject[:100])}</td>"
                    f'<td>{esc(e.machine)}</td><td>{esc(e.spec)}</td><td class="num">{esc(cal)}</td><td>{link}</td></tr>')
    head = "".join(f"<th>{h}</th>" for h in ("commit", "date", "subject", "machine", "spec", "calibration", "full report"))
    return f'<table id="commits" class="grid"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def write_reports(all_entries: Sequence[Entry], out: Path, latest: int) -> dict[Path, str]:
    """The full report of the `latest` commits of each machine × spec, under out/reports/; entry → href."""
    from scalebench.report.html import write_report

    groups: dict[tuple[str, str], list[Entry]] = {}
    for e in all_entries:
        groups.setdefault((e.machine, e.spec), []).append(e)
    hrefs = {}
    for group in groups.values():
        for e in sorted(group, key=order_key)[-latest:] if latest > 0 else []:
            rel = Path("reports") / e.machine / e.commit / e.spec
            write_report([e.path], out / rel)
            hrefs[e.path] = (rel / "index.html").as_posix()
    return hrefs


def render(points: Sequence[PointHistory], all_entries: Sequence[Entry], reports: dict[Path, str],
           normalized: bool, store_name: str, threshold: float = THRESHOLD, penalty: float = PENALTY) -> str:
    import plotly

    from scalebench import __version__ as sb_version

    plotly_js = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text(encoding="utf-8")
    groups: dict[tuple[str, str], list[PointHistory]] = {}
    for ph in points:
        groups.setdefault((ph.machine, ph.spec), []).append(ph)
    overview = "".join(_chart(f"overview-{i}", overview_figure(g, m, s), eager=True)
                       for i, ((m, s), g) in enumerate(sorted(groups.items())))
    n_reg = sum(f.kind == "regression" for ph in points for f in ph.findings)
    n_imp = sum(f.kind == "improvement" for ph in points for f in ph.findings)
    machines = sorted({e.machine for e in all_entries})
    commits = {e.commit for e in all_entries}
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    unit = "latency ÷ the run's calibration figure" if normalized else "milliseconds per sample"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>scalebench history</title><style>{STYLE}{EXTRA_STYLE}</style>
<script>{plotly_js}</script>
</head><body>
<h1>scalebench history</h1>
<p class="note">Sampling speed and quality of every point over {len(commits)} commits on {len(machines)} machine(s)
({esc(', '.join(machines))}), from the store <code>{esc(store_name)}</code>. Latency in {esc(unit)}. Generated
{esc(generated)} by scalebench {esc(sb_version)}. Works offline.</p>
<h2 id="summary">Summary: {n_reg} regression(s), {n_imp} improvement(s)</h2>
<p class="note">Steps found by a penalised piecewise-constant fit over each point's whole history (L1, each run
weighted by its p10–p90 spread, penalty {penalty:g}·log(n), at least 2 runs per level) and reported when the
levels differ by at least {threshold:.0%}. A step's commit range runs from the last run before it (exclusive)
to the first run at the new level (inclusive): <code>git log A..B</code> lists the suspects.</p>
{_summary_html(points, normalized)}
<h2 id="points">Points</h2>
<p class="note">One row per point (machine × spec × generator × sampler × S × K × device); the sparkline is its
latency over commits, dots mark detected steps (red: regression, green: improvement). Click a point for its panel.</p>
{_index_html(points, normalized)}
<h2 id="overview">Overview</h2>
{overview}
<h2 id="panels">Per-point history</h2>
<p class="note">Latency median with the p10–p90 band of its timed repeats, and each quality metric, in commit order;
hover names the commit and its date, a click opens that commit's full report where this site has one.</p>
{_panels_html(points, reports, normalized)}
<h2 id="commits-h">Commits</h2>
{_commits_html(all_entries, reports)}
<script>var CONFIG={json.dumps(PLOTLY_CONFIG)};{LOADER}</script>
</body></html>
"""


def build_site(store: Path, out: Path, normalize: bool = False, reports: int = 0, threshold: float = THRESHOLD,
               penalty: float = PENALTY) -> tuple[Path, list[PointHistory]]:
    """Write `out/index.html` (and the latest `reports` full reports per machine × spec); return it and the points."""
    found = entries(store)
    out = Path(out)
    if out.exists() and not out.is_dir():
        from scalebench.errors import UsageError

        raise UsageError(f"--out {out} is a file; pass a directory for the site")
    out.mkdir(parents=True, exist_ok=True)
    points = histories(found, normalize=normalize, threshold=threshold, penalty=penalty)
    hrefs = write_reports(found, out, reports) if reports else {}
    index = out / "index.html"
    atomic_write_text(index, render(points, found, hrefs, normalize, os.path.basename(os.path.abspath(store)),
                                    threshold, penalty))
    return index, points
