"""The self-contained HTML report, read top-down: a one-screen summary grid of the 2-axis table,
small multiples of each family's curve against its own floor, the cross-family frontiers, more
charts, sample grids, and provenance last (collapsed).

`index.html` opens offline with no network request: plotly.js is inlined once, gzip-compressed
(`report.assets`), figures are JSON in `<script type="application/json">` blocks (< and > as \\u
escapes, so no string can end the block), sample grids are small PNGs (`report.previews`), and a
Content-Security-Policy forbids any fetch. Charts are drawn when they come near the screen, so
the page opens in well under two seconds; `window.scalebenchReady` resolves when plotly.js is
running and the charts on the first screen are drawn, `window.scalebenchRenderAll()` draws the
rest. Every user-provided string (generator, sampler, spec text, manifest fields) goes through
`html.escape`. `table.md` and `table.csv` are written beside it; `png=True` adds
`png/<chart>.png` via kaleido and the sample grids as `png/samples_<i>.png`.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from scalebench.atomic import atomic_write_text
from scalebench.report import charts
from scalebench.report.assets import figure_json, plotly_js_gzip_b64, template_json
from scalebench.report.grid import summary_grid
from scalebench.report.identity import Identity, frame_identities, sampler_key
from scalebench.report.table import TABLE_COLUMNS, known_cards, quality_metrics, scalability_table
from scalebench.report.tablefmt import DISPLAY_COLUMNS, KINDS, LABELS, markdown_table, table_display
from scalebench.results import load_results, read_manifest, run_dirs
from scalebench.verdict.decide import DecisionRule
from scalebench.verdict.words import describe

if TYPE_CHECKING:  # pragma: no cover
    from scalebench.api import MethodCard

CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "img-src data: blob:; font-src data:")
NO_TABLE = "No quality metric in these results (a speed-only spec?), so there is no scalability table."
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
SAMPLE_ZOOM = 4  # a preview pixel is shown as SAMPLE_ZOOM × SAMPLE_ZOOM screen pixels


def esc(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


@dataclass
class Chart:
    """One figure on the page: a stable id (file name of its PNG), a heading, the figure.

    `section`: "main" (right under the summary), "more" (costs, S × K, latency), "other"
    (the other quality metrics, one collapsed block each; `group` names the metric) or
    "scaling" (fitted scaling laws, when `scalebench.scaling.figures` provides them).
    """

    id: str
    heading: str
    figure: go.Figure
    section: str = "main"
    group: str = ""


def _has(df: pd.DataFrame, metric: str) -> bool:
    return bool(((df["metric"] == metric) & (df["status"] == "ok") & df["value"].notna()).any())


def build_charts(df: pd.DataFrame, metric: str | None) -> list[Chart]:
    """Every chart of the report, in page order (`metric=None`: a speed-only run, cost charts only)."""
    out = []
    if metric is not None:
        out += [
            Chart("quality_vs_K", f"{metric} vs refinement steps K, one panel per family",
                  charts.quality_vs_K(df, metric)),
            Chart("quality_vs_S", f"{metric} vs sequence steps S, one panel per family",
                  charts.quality_vs_S(df, metric)),
            Chart("quality_vs_latency", f"{metric} vs latency across families, Pareto frontier",
                  charts.quality_vs_latency(df, metric)),
            Chart("quality_vs_flops", f"{metric} vs FLOPs per sample across families, Pareto frontier",
                  charts.quality_vs_flops(df, metric)),
            Chart("sk_heatmap", f"{metric} over S × K", charts.sk_heatmap(df, metric), "more"),
            Chart("quality_vs_total_nfe", f"{metric} vs total NFE (S × K)", charts.quality_vs_total_nfe(df, metric),
                  "more"),
            Chart("quality_vs_nfe", f"{metric} vs NFE", charts.quality_vs_nfe(df, metric), "more"),
        ]
    if _has(df, "latency_s"):
        section = "main" if metric is None else "more"  # latency is a main view only for a speed-only run
        out += [Chart("latency_vs_S", "latency vs S, one panel per family", charts.latency_vs_S(df), section),
                Chart("latency_vs_K", "latency vs K, one panel per family", charts.latency_vs_K(df), section)]
    if _has(df, "peak_mem_bytes"):
        out += [Chart("peak_mem_vs_K", "peak memory per batch (bytes above the pre-batch level) vs K",
                      charts.quality_vs_K(df, "peak_mem_bytes"), "more"),
                Chart("peak_mem_vs_S", "peak memory per batch (bytes above the pre-batch level) vs S",
                      charts.quality_vs_S(df, "peak_mem_bytes"), "more")]
    for m in quality_metrics(df):
        if m != metric:
            out.append(Chart(f"{m}_vs_K", f"{m} vs K", charts.quality_vs_K(df, m), "other", m))
            out.append(Chart(f"{m}_vs_S", f"{m} vs S", charts.quality_vs_S(df, m), "other", m))
    out += scaling_charts(df, metric)
    return out


def scaling_charts(df: pd.DataFrame, metric: str | None) -> list[Chart]:
    """The fitted scaling laws (section "scaling"): α per row and axis over the measured points, the
    compute-optimal S × K path of each both-axes row, and the frontier across families."""
    from scalebench.scaling import figures

    if metric is None or not _has(df, metric):
        return []
    fits = figures.fits_figure(df, metric)
    out = [Chart("scaling_fits", f"{metric}: fitted scaling laws against NFE", fits, "scaling")] if fits.data else []
    for label, fig in figures.allocation_figures(df, metric).items():
        out.append(Chart(f"allocation_{_slug(label)}", f"{label}: compute-optimal S × K", fig, "scaling"))
    frontier = figures.frontier_figure(df, metric)
    if frontier.data:  # a run without FLOPs has no frontier per FLOP to draw
        out.append(Chart("scaling_frontier", f"best {metric} per FLOP across families", frontier, "scaling"))
    return out


def _slug(label: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in label).strip("_")


def _provenance_html(manifests: Mapping[str, dict[str, Any]], df: pd.DataFrame) -> str:
    parts = []
    for run, m in manifests.items():
        spec = m.get("spec") or {}
        prov = m.get("provenance") or {}
        hashes = df.loc[df["run"] == run, "spec_hash"].dropna().unique()
        fields = [("run", run), ("spec", spec.get("name")), ("spec source", m.get("spec_source")),
                  ("spec hash", ((m.get("invocations") or [{}])[-1].get("spec_hash")
                                 or (", ".join(map(str, hashes)) or None))),
                  ("git commit", m.get("git_commit")), ("device", m.get("device")),
                  ("device name", prov.get("device_name")), ("host", prov.get("host")),
                  ("platform", prov.get("platform")), ("started", m.get("started_at")),
                  ("calibration (s)", m.get("calibration_s")), ("torch threads", m.get("threads")),
                  ("invocations", len(m.get("invocations") or []) or None)]
        rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in fields if v not in (None, ""))
        versions = m.get("versions") or {}
        vers = ", ".join(f"{esc(k)} {esc(v)}" for k, v in versions.items())
        rows += f"<tr><th>versions</th><td>{vers or '—'}</td></tr>"
        raw = m.get("spec_raw") or (json.dumps(spec, indent=2, default=str) if spec else "")
        spec_block = f"<details><summary>spec</summary><pre>{esc(raw)}</pre></details>" if raw else ""
        parts.append(f'<div class="run"><table class="kv">{rows}</table>{spec_block}</div>')
    commits = sorted(set(df["git_commit"].dropna().astype(str)))
    n_ok = df.loc[df["status"] == "ok", "point_id"].nunique()
    n_failed = df.loc[df["status"] != "ok", "point_id"].nunique()
    summary = (f"<p>{n_ok} points ok, {n_failed} failed; record commits: "
               f"{esc(', '.join(commits)) or '—'}</p>")
    return summary + "".join(parts)


def _args_html(df: pd.DataFrame) -> str:
    """Which registered generator and which spec args stand behind each labelled row (users' own models)."""
    if "args" not in df.columns:
        return ""
    rows = df[(df["args"].fillna("") != "") | (df["generator"] != df["generator_name"].fillna(df["generator"]))]
    if rows.empty:
        return ""
    seen = rows.drop_duplicates(["generator", "generator_name", "args", "dataset"])
    body = "".join(
        f"<tr><td>{esc(r.generator)}</td><td>{esc(r.generator_name)}</td><td>{esc(r.dataset)}</td>"
        f"<td><code>{esc(r.args)}</code></td></tr>" for r in seen.itertuples())
    return ('<h3 id="models">Models and their arguments</h3><table id="model-args" class="grid"><thead><tr>'
            "<th>row</th><th>generator</th><th>dataset</th><th>args</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _flags_html(df: pd.DataFrame) -> str:
    """The flagged points (copies / collapse, `scalebench.flags`), each with a red badge and its reason, in a
    collapsed block under the grid (whose cells carry the badges); "" if none."""
    from scalebench.flags import point_flags, rule_text

    pf = point_flags(df)
    pf = pf[pf["flags"] != ""]
    if pf.empty:
        return ""
    items = "".join(
        f'<li><span class="badge">{esc(r.flags)}</span> {esc(r.generator)}'
        f"{'/' + esc(r.sampler) if isinstance(r.sampler, str) and r.sampler else ''} S={esc(r.S)} K={esc(r.K)} "
        f"seed {esc(r.seed)} n={esc(r.n)}: {esc(r.reason)}</li>" for r in pf.itertuples())
    return (f'<details id="flags" class="table"><summary>Flagged points ({len(pf)}): their good numbers may come '
            "from copying training images or from collapse</summary><p class='note'>They are ringed in red on the "
            f"charts and never drawn as the Pareto frontier. {esc(rule_text())}.</p><ul>{items}</ul></details>")


def _table_html(table_df: pd.DataFrame) -> str:
    d = table_display(table_df)
    head = "".join(f"<th>{esc(c)}</th>" for c in DISPLAY_COLUMNS)
    body, prev = [], None
    for _, r in d.iterrows():
        if r["category"] != prev:
            body.append(f'<tr class="group"><th colspan="{len(DISPLAY_COLUMNS)}">{esc(r["category"])}</th></tr>')
            prev = r["category"]
        cells = []
        for c in DISPLAY_COLUMNS:
            v = str(r[c])
            cls = f"v{' seed' if c.startswith('seed') else ''} v-{_KIND_OF_LABEL[v]}" \
                if c in ("S", "K", "seed S", "seed K") and v in _KIND_OF_LABEL \
                else ("agree" if c == "agrees" and v == "yes" else "disagree" if c == "agrees" and v.startswith("no")
                      else "unsure" if c == "agrees" and v.startswith("?") else "floor" if c == "floor"
                      else "flagged" if c == "flags" and v
                      else "evidence" if c.endswith("evidence") else "")
            cells.append(f'<td class="{cls}">{esc(v)}</td>' if cls else f"<td>{esc(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table id="scalability-table" class="grid"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _chart_html(chart: Chart) -> str:
    """The chart as a <figure>: its title moves out of the SVG into the caption (HTML wraps; SVG does not); its
    div keeps the figure's height before it is drawn, so only the charts near the screen are drawn first."""
    payload = figure_json(chart.figure, f"figure {chart.id}", drop_title=True)
    title = html.unescape(chart.figure.layout.title.text or "")  # Plotly titles are escaped for Plotly
    note = f'<span class="sub">{esc(title)}</span>' if title and title != chart.heading else ""
    return (f'<figure class="chart {esc(chart.section)}"><figcaption>{esc(chart.heading)}{note}</figcaption>'
            f'<div class="plotly-chart" id="chart-{esc(chart.id)}" data-chart="{esc(chart.id)}" '
            f'style="height:{int(chart.figure.layout.height or 450)}px"></div>'
            f'<script type="application/json" id="data-{esc(chart.id)}">{payload}</script></figure>')


SampleBlock = tuple[tuple[str, str], list[tuple[str, bytes, tuple[int, int]]]]


def sample_pngs(previews: Mapping[str, np.ndarray], points: Mapping[tuple[str, str], list[tuple[str, str]]],
                order: list[str] | None = None) -> list[SampleBlock]:
    """Per (generator, sampler), generators in `order` (else by name): [(label, PNG bytes, (height, width) in
    pixels)] of its preview grids."""
    from scalebench.report.previews import mosaic, preview_png

    rank = {g: i for i, g in enumerate(order or [])}
    out = []
    for key in sorted(points, key=lambda k: (rank.get(k[0], len(rank)), k)):
        grids = [(label, preview_png(previews[pid]), mosaic(previews[pid]).shape[:2])
                 for label, pid in points[key] if pid in previews]
        if grids:
            out.append((key, grids))
    return out


def _samples_html(blocks: list[SampleBlock], ids: Mapping[tuple[str, str], Identity]) -> str:
    parts = []
    for (gen, sampler), grids in blocks:
        name = gen if sampler in ("default", "") else f"{gen}/{sampler}"
        ident = ids.get((gen, sampler_key(sampler)))
        style = f' style="border-top-color:{esc(ident.colour)}"' if ident else ""
        imgs = "".join(
            f'<div><img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" '
            f'width="{w * SAMPLE_ZOOM}" height="{h * SAMPLE_ZOOM}" alt="{esc(f"samples of {name} at {label}")}">'
            f"<span>{esc(label)}</span></div>" for label, png, (h, w) in grids)
        parts.append(f'<figure class="samples"{style}><figcaption>{esc(name)}</figcaption>'
                     f'<div class="pair">{imgs}</div></figure>')
    return f'<div id="samples">{"".join(parts)}</div>' if parts else ""


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1400px;padding:0 18px;color:#222}
h1{margin:14px 0 2px;font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
table.grid{border-collapse:collapse;width:100%;font-size:13px}
table.grid th,table.grid td{border:1px solid #ddd;padding:4px 6px;vertical-align:top;text-align:left}
table.grid thead th{background:#f4f4f4;position:sticky;top:0}
tr.group th{background:#eef3fb;text-transform:uppercase;letter-spacing:.04em;font-size:12px}
td.v{text-align:center;white-space:nowrap;font-weight:600}td.v-yes{background:#e3f5e1;color:#176b1d}
td.v-no{background:#fbe3e3;color:#a11}td.v-worse{background:#f6c9c9;color:#800}td.v-floor{background:#e0f0fa;color:#0b5a7a}td.v-unsure{background:#fff3cd;color:#8a5a00}
td.v-fixed,td.v-nodata{color:#666}td.v.seed{background:none;font-weight:500}td.floor{white-space:nowrap}td.evidence{font-size:12px;color:#444;max-width:420px}
td.flagged,.badge{background:#a11;color:#fff;font-weight:700;white-space:nowrap}.badge{padding:0 5px;border-radius:3px;margin-left:5px;font-size:11px}
.badge.warn{background:#b06a00}
td.agree{color:#176b1d;font-weight:600}td.disagree{color:#a11;font-weight:600}td.unsure{color:#8a5a00}
.legend span{white-space:nowrap;margin-right:4px;font-weight:600}.legend .v-yes{color:#176b1d}
.legend .v-no{color:#a11}.legend .v-worse{color:#800}.legend .v-floor{color:#0b5a7a}.legend .v-unsure{color:#8a5a00}.legend .v-fixed{color:#666}
details#provenance{margin-top:32px}details#provenance>summary{font-size:1.3em;font-weight:600;cursor:pointer}
details>summary{cursor:pointer}details.block{margin:10px 0}details.block>summary{font-weight:600}
table.kv th{text-align:right;padding-right:10px;color:#555;font-weight:500}table.kv td{font-family:ui-monospace,monospace}
.run{display:inline-block;vertical-align:top;margin:0 24px 12px 0}
figure.chart{margin:18px 0 10px}figcaption{font-weight:600;margin-bottom:2px}figcaption .sub{display:block;font-weight:400;color:#555;font-size:13px}.note{color:#555}
p.lead{margin:2px 0 6px;font-size:13px}pre{background:#f7f7f7;padding:8px;overflow:auto}
#summary-grid{display:grid;grid-template-columns:150px 1fr;gap:6px 10px;margin:6px 0}
.scat{font-size:13px;padding-top:3px;border-top:1px solid #eee}.scat b{text-transform:uppercase;letter-spacing:.03em;font-size:12px}
.scat span{display:block;color:#555;font-size:12px}.cells{display:flex;flex-wrap:wrap;gap:6px;border-top:1px solid #eee;padding-top:3px}
.cell{width:178px;box-sizing:border-box;border:1px solid #d8d8d8;border-left:5px solid #888;border-radius:3px;padding:2px 6px;font-size:12.5px;cursor:pointer;line-height:1.35}
.cell:hover{box-shadow:0 0 0 2px #9ab}.cell.agree-yes{background:#f0f9ee}.cell.agree-no{background:#fcecec}.cell.agree-open{background:#fffaea}
.cname{font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}.cv{white-space:nowrap;font-weight:600}.cv span{margin-right:10px}
.cv .v-yes{color:#176b1d}.cv .v-no{color:#a11}.cv .v-worse{color:#800}.cv .v-floor{color:#0b5a7a}.cv .v-unsure{color:#8a5a00}.cv .v-fixed,.cv .v-nodata{color:#777}
.cag{font-size:11.5px;color:#444;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}.cb{line-height:1.2}.cb .badge{margin:0 4px 0 0}
.gridnote{font-size:13px;margin:4px 0}.gridnote .agree-yes{color:#176b1d;font-weight:600}.gridnote .agree-no{color:#a11;font-weight:600}.gridnote .agree-open{color:#8a5a00;font-weight:600}
tr.hit td{outline:2px solid #e0a000}
#samples{display:flex;flex-wrap:wrap;gap:10px}figure.samples{margin:0;border-top:4px solid #888;padding-top:2px}
figure.samples .pair{display:flex;gap:6px}figure.samples .pair span{display:block;font-size:11px;color:#555}
figure.samples img{image-rendering:pixelated;display:block}
"""

LOADER = """
(function(){
  var errors=[], drawn={}, TEMPLATE=JSON.parse(document.getElementById('plotly-template').textContent);
  window.scalebenchChartErrors=errors;
  function bytes(s){var b=atob(s),a=new Uint8Array(b.length);for(var i=0;i<b.length;i++)a[i]=b.charCodeAt(i);return a;}
  function inflate(id){
    var s=new Blob([bytes(document.getElementById(id).textContent)]).stream().pipeThrough(new DecompressionStream('gzip'));
    return new Response(s).text();
  }
  function wire(div){  // a legend click toggles a frontier method's highlight instead of hiding it
    div.on('plotly_legendclick',function(ev){
      var tr=ev.data[ev.curveNumber];
      if(!tr||!tr.meta||tr.meta.fade===undefined) return true;
      Plotly.restyle(div,{opacity:(tr.opacity===undefined||tr.opacity>=1)?FADED:1},[ev.curveNumber]);
      return false;
    });
  }
  function draw(div){
    var id=div.getAttribute('data-chart');
    if(drawn[id]) return drawn[id];
    var fig=JSON.parse(document.getElementById('data-'+id).textContent), layout=fig.layout||{};
    if(!layout.template) layout.template=TEMPLATE;
    drawn[id]=Plotly.newPlot(div,fig.data||[],layout,CONFIG).then(function(){wire(div);div.setAttribute('data-drawn','1');})
      .catch(function(e){errors.push(id+': '+e);console.error(e);});
    return drawn[id];
  }
  function divs(){return Array.prototype.slice.call(document.querySelectorAll('div.plotly-chart'));}
  window.scalebenchReady=(async function(){
    if(typeof DecompressionStream==='undefined'){
      errors.push('this browser has no DecompressionStream (Chromium 80+, Firefox 113+, Safari 16.4+)');
      document.getElementById('js-note').textContent='Charts need a browser with DecompressionStream (Chromium 80+, Firefox 113+, Safari 16.4+).';
      return;
    }
    var t=window.scalebenchTimings={start:performance.now()}, text=await inflate('plotly-js-gz');
    t.inflated=performance.now();
    var js=document.createElement('script');js.textContent=text;document.head.appendChild(js);
    t.plotly=performance.now();
    var near=function(d){var r=d.getBoundingClientRect();return r.height>0&&r.top<innerHeight+300&&r.bottom>-300;};
    var first=divs().filter(near);
    var io=new IntersectionObserver(function(es){es.forEach(function(e){if(e.isIntersecting){io.unobserve(e.target);draw(e.target);}});},
                                    {rootMargin:'400px'});
    divs().forEach(function(d){io.observe(d);});
    await Promise.all(first.map(draw));
    t.firstScreen=performance.now();
  })();
  window.scalebenchRenderAll=function(){  // open every collapsed chart block, then draw every chart
    document.querySelectorAll('details.block').forEach(function(d){d.open=true;});
    return window.scalebenchReady.then(function(){return Promise.all(divs().map(draw));});
  };
  document.querySelectorAll('#summary-grid .cell').forEach(function(c){  // a cell opens its full table row
    c.addEventListener('click',function(){
      var ev=document.getElementById('evidence'); ev.open=true;
      var tr=document.querySelectorAll('#scalability-table tbody tr:not(.group)')[+c.getAttribute('data-row')];
      document.querySelectorAll('tr.hit').forEach(function(t){t.classList.remove('hit');});
      if(tr){tr.classList.add('hit');tr.scrollIntoView({block:'center'});}
    });
  });
})();
"""


_KIND_OF_LABEL = {lab: KINDS[v] for v, lab in LABELS.items()}


def _legend_html() -> str:
    from scalebench.verdict.words import LABELS as VERDICT_LABELS
    from scalebench.verdict.words import MEANINGS

    return "&emsp;".join(f'<span class="v-{KINDS[v]}" title="{esc(MEANINGS[v])}">{esc(VERDICT_LABELS[v])}</span>'
                         for v in VERDICT_LABELS)


def _other_html(chart_list: list[Chart]) -> str:
    """The other quality metrics, one collapsed block per metric (drawn when opened)."""
    groups: dict[str, list[Chart]] = {}
    for c in chart_list:
        if c.section == "other":
            groups.setdefault(c.group, []).append(c)
    if not groups:
        return ""
    blocks = "".join(f'<details class="block" id="other-{esc(m)}"><summary>{esc(m)} vs K and vs S</summary>'
                     f'{"".join(_chart_html(c) for c in cs)}</details>' for m, cs in groups.items())
    return f'<h2 id="other">Other quality metrics</h2><p class="note">One block per metric; opened, its charts are drawn.</p>{blocks}'


def render_html(table_df: pd.DataFrame, chart_list: list[Chart], manifests: Mapping[str, dict[str, Any]],
                df: pd.DataFrame, rule: DecisionRule, pngs: Iterable[Path] = (), samples: str = "") -> str:
    """The page as one string (plotly.js inlined once, compressed), top-down: the summary grid (full table
    collapsed under it), main charts, scaling laws, more, other metrics, samples, provenance."""
    metric = str(table_df["metric"].iloc[0]) if len(table_df) else "?"
    better = str(table_df["better"].iloc[0]) if len(table_df) else "?"
    from scalebench import __version__ as sb_version

    sections: dict[str, list[str]] = {"main": [], "more": [], "scaling": []}
    for c in chart_list:
        if c.section in sections:
            sections[c.section].append(_chart_html(c))
    png_links = "".join(f'<li><a href="png/{esc(p.name)}">{esc(p.name)}</a></li>' for p in pngs)
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    more = f'<h2 id="more">More charts: S × K, costs, latency, memory</h2>{"".join(sections["more"])}' \
        if sections["more"] else ""
    scaling = f'<h2 id="scaling">Scaling laws</h2>{"".join(sections["scaling"])}' if sections["scaling"] else ""
    has_floor = "floor" in table_df.columns and table_df["floor"].notna().any()
    floor_note = (f"The grey band is the data floor: {esc(metric)} of real held-out data against the reference at "
                  f"the panel's n, mean ± {rule.floor_z:g} sd; values inside it cannot be told apart from real data."
                  if has_floor else "No data floor is recorded in these results, so no floor band is drawn.")
    chart_note = (f"{floor_note} Panels share their axes, logarithmic where the values span more than a decade. "
                  "Each method keeps one colour, marker and dash in every chart. On the frontiers at most "
                  f"{charts.HIGHLIGHT} methods are highlighted; click a legend entry to highlight or fade it."
                  if len(table_df) else "A speed-only run: latency per sample, log–log.")
    if len(table_df):
        ids = frame_identities(df)
        n_rows = len(table_df)
        table_block = f"""<h2 id="table">Measured 2-axis scalability table · {esc(metric)} ({esc(better)} is better)</h2>
<p class="legend note">{_legend_html()} — hover a mark for its meaning.</p>
{summary_grid(table_df, ids, df)}
<p class="note" style="font-size:12px">{esc(str(table_df.attrs.get("header", "")))} Both-axes rows are judged at the
other axis's largest value.</p>
<details id="evidence" class="table"><summary>Full table with the evidence ({n_rows} rows; seed columns, floor,
flags)</summary>
{_table_html(table_df)}
<details><summary>How the verdicts are decided</summary><p class="note">{esc(describe(rule))}</p></details>
</details>"""
    else:
        table_block = f'<h2 id="table">Measured 2-axis scalability table</h2><p id="no-table">{esc(NO_TABLE)}</p>'
    table_block += _flags_html(df) + _args_html(df)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>scalebench report</title><style>{STYLE}</style>
</head><body>
<h1>scalebench report</h1>
<p class="note lead">Measured inference-time scaling along S (sequential commit steps) and K (refinement steps).
Generated {esc(generated)} by scalebench {esc(sb_version)}; works offline. <a href="table.md">table.md</a> ·
<a href="table.csv">table.csv</a> · <a href="#charts">charts</a> · <a href="#samples-h">samples</a> ·
provenance at the end. <span id="js-note"></span></p>
{table_block}
<h2 id="charts">Main charts</h2>
<p class="note">{chart_note}</p>
{''.join(sections['main'])}
{scaling}
{more}
{_other_html(chart_list)}
<h2 id="samples-h">Samples</h2>
<p class="note">16 stored samples per point: the cheapest and the most expensive grid point of each method.</p>
{samples or '<p>no previews stored in these results</p>'}
{f'<h2>Static images</h2><ul>{png_links}</ul>' if png_links else ''}
<details id="provenance"><summary>Provenance: runs, specs, versions, commits</summary>
{_provenance_html(manifests, df)}
</details>
<script type="application/json" id="plotly-template">{template_json()}</script>
<script type="application/octet-stream" id="plotly-js-gz">{plotly_js_gzip_b64()}</script>
<script>var CONFIG={json.dumps(PLOTLY_CONFIG)},FADED={charts.FADED};{LOADER}</script>
</body></html>
"""


def write_report(paths: str | Path | Iterable[str | Path], out_dir: str | Path, png: bool = False,
                 metric: str | None = None, rule: DecisionRule = DecisionRule(),
                 cards: Mapping[str, MethodCard] | None = None) -> Path:
    """Write index.html, table.md and table.csv (and png/*.png) into `out_dir`; return index.html.

    `cards` default to the registry's cards for the generators in the results.
    """
    from scalebench.report.previews import load_previews, preview_points

    if isinstance(paths, str | Path):
        paths = [paths]
    paths = list(paths)
    df = load_results(paths)
    if cards is None:
        cards = known_cards(df)
    if metric is None and not quality_metrics(df):  # a speed-only run: no table, cost charts only
        table_df = pd.DataFrame(columns=TABLE_COLUMNS)
    else:
        table_df = scalability_table(df, metric, rule=rule, cards=cards)
        metric = str(table_df["metric"].iloc[0]) if len(table_df) else metric
    points = preview_points(df)
    previews = load_previews(paths, [pid for chosen in points.values() for _, pid in chosen])
    chart_list = build_charts(df, metric)
    blocks = sample_pngs(previews, points, charts.panel_order(df, {g for g, _ in points}))
    manifests = {d.name: read_manifest(d) for d in run_dirs(paths)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pngs: list[Path] = []
    if png:
        from scalebench.report.images import write_pngs

        pngs = write_pngs({c.id: c.figure for c in chart_list}, out / "png")
        for i, (_, grids) in enumerate(blocks):
            for j, (_, data, _) in enumerate(grids):
                path = out / "png" / f"samples_{i:02d}_{j}.png"
                path.write_bytes(data)
                pngs.append(path)
    atomic_write_text(out / "table.md", markdown_table(table_df) if len(table_df) else NO_TABLE + "\n")
    atomic_write_text(out / "table.csv", table_df.to_csv(index=False))
    index = out / "index.html"
    samples = _samples_html(blocks, frame_identities(df))
    atomic_write_text(index, render_html(table_df, chart_list, manifests, df, rule, pngs, samples))
    return index
