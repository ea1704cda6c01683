"""The self-contained HTML report, read top-down: the 2-axis table, the main charts, more
charts, sample grids, and provenance last (collapsed).

`index.html` opens offline with no network request: plotly.js is inlined from the plotly
package, figures are JSON in `<script type="application/json">` blocks (Plotly's encoder
writes `<`, `>`, `/` as \\u escapes, so no string can end the block), and a
Content-Security-Policy forbids any fetch. Every user-provided string (generator, sampler,
spec text, manifest fields) goes through `html.escape`. `table.md` and `table.csv` are
written beside it; `png=True` adds `png/<chart>.png` via kaleido.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import plotly.graph_objects as go

from scalebench.atomic import atomic_write_text
from scalebench.report import charts
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


def esc(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


@dataclass
class Chart:
    """One figure on the page: a stable id (file name of its PNG), a heading, the figure.

    `section`: "main" (right under the table), "more" (costs, heatmap, latency), "other"
    (the other quality metrics) or "samples".
    """

    id: str
    heading: str
    figure: go.Figure
    section: str = "main"


def build_charts(df: pd.DataFrame, metric: str | None, previews: Mapping[str, Any] | None = None,
                 points: Mapping[tuple[str, str], list[tuple[str, str]]] | None = None) -> list[Chart]:
    """Every chart of the report, in page order (`metric=None`: a speed-only run, cost charts only)."""
    out = []
    if metric is not None:
        out += [
            Chart("quality_vs_K", f"{metric} vs refinement steps K", charts.quality_vs_K(df, metric)),
            Chart("quality_vs_S", f"{metric} vs sequence steps S", charts.quality_vs_S(df, metric)),
            Chart("quality_vs_latency", f"{metric} vs latency, Pareto frontier",
                  charts.quality_vs_latency(df, metric)),
            Chart("sk_heatmap", f"{metric} over S × K", charts.sk_heatmap(df, metric), "more"),
            Chart("quality_vs_total_nfe", f"{metric} vs total NFE (S × K)", charts.quality_vs_total_nfe(df, metric),
                  "more"),
            Chart("quality_vs_nfe", f"{metric} vs NFE", charts.quality_vs_nfe(df, metric), "more"),
            Chart("quality_vs_flops", f"{metric} vs FLOPs per sample", charts.quality_vs_flops(df, metric), "more"),
        ]
    if ((df["metric"] == "latency_s") & (df["status"] == "ok") & df["value"].notna()).any():
        out += [Chart("latency_vs_S", "latency vs S", charts.latency_vs_S(df)),
                Chart("latency_vs_K", "latency vs K", charts.latency_vs_K(df))]
    if ((df["metric"] == "peak_mem_bytes") & (df["status"] == "ok") & df["value"].notna()).any():
        out += [Chart("peak_mem_vs_K", "peak memory per batch (bytes above the pre-batch level) vs K",
                      charts.quality_vs_K(df, "peak_mem_bytes"), "more"),
                Chart("peak_mem_vs_S", "peak memory per batch (bytes above the pre-batch level) vs S",
                      charts.quality_vs_S(df, "peak_mem_bytes"), "more")]
    for m in quality_metrics(df):
        if m != metric:
            out.append(Chart(f"{m}_vs_K", f"{m} vs K", charts.quality_vs_K(df, m), "other"))
            out.append(Chart(f"{m}_vs_S", f"{m} vs S", charts.quality_vs_S(df, m), "other"))
    for i, ((gen, sampler), chosen) in enumerate(sorted((points or {}).items())):
        grids = {label: previews[pid] for label, pid in chosen if previews and pid in previews}
        if grids:
            name = gen if sampler in ("default", "") else f"{gen}/{sampler}"
            out.append(Chart(f"samples_{i:02d}", f"samples: {name}",
                             charts.sample_grid(grids, title=f"samples: {name}"), "samples"))
    if metric is not None:  # latency is a main view only for a speed-only run
        for c in out:
            if c.id.startswith("latency_vs_"):
                c.section = "more"
    return out


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
    """A red badge per flagged point (copies / collapse, `scalebench.flags`) with its reason; "" if none."""
    from scalebench.flags import point_flags, rule_text

    pf = point_flags(df)
    pf = pf[pf["flags"] != ""]
    if pf.empty:
        return ""
    items = "".join(
        f'<li><span class="badge">{esc(r.flags)}</span> {esc(r.generator)}'
        f"{'/' + esc(r.sampler) if isinstance(r.sampler, str) and r.sampler else ''} S={esc(r.S)} K={esc(r.K)} "
        f"seed {esc(r.seed)} n={esc(r.n)}: {esc(r.reason)}</li>" for r in pf.itertuples())
    return (f'<div id="flags"><h3>Flagged points ({len(pf)})</h3><p class="note">Their good numbers may come from '
            f"copying training images or from collapse; they are ringed in red on the charts and never drawn as the "
            f"Pareto frontier. {esc(rule_text())}.</p><ul>{items}</ul></div>")


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
    payload = chart.figure.to_json()  # plotly escapes <, >, / as \u003c, \u003e, \u002f
    if re.search(r"</", payload, re.I):  # defence in depth: never let data close the block
        raise ValueError(f"figure {chart.id} JSON contains '</'; refusing to embed it")
    caption = "" if chart.section == "samples" else f"<figcaption>{esc(chart.heading)}</figcaption>"
    return (f'<figure class="chart {esc(chart.section)}">{caption}'
            f'<div class="plotly-chart" id="chart-{esc(chart.id)}" data-chart="{esc(chart.id)}"></div>'
            f'<script type="application/json" id="data-{esc(chart.id)}">{payload}</script></figure>')


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1400px;padding:0 18px;color:#222}
h1{margin:18px 0 4px}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
table.grid{border-collapse:collapse;width:100%;font-size:13px}
table.grid th,table.grid td{border:1px solid #ddd;padding:4px 6px;vertical-align:top;text-align:left}
table.grid thead th{background:#f4f4f4;position:sticky;top:0}
tr.group th{background:#eef3fb;text-transform:uppercase;letter-spacing:.04em;font-size:12px}
td.v{text-align:center;white-space:nowrap;font-weight:600}td.v-yes{background:#e3f5e1;color:#176b1d}
td.v-no{background:#fbe3e3;color:#a11}td.v-worse{background:#f6c9c9;color:#800}td.v-floor{background:#e0f0fa;color:#0b5a7a}td.v-unsure{background:#fff3cd;color:#8a5a00}
td.v-fixed,td.v-nodata{color:#666}td.v.seed{background:none;font-weight:500}td.floor{white-space:nowrap}td.evidence{font-size:12px;color:#444;max-width:420px}
td.flagged,.badge{background:#a11;color:#fff;font-weight:700;white-space:nowrap}.badge{padding:1px 6px;border-radius:3px}
td.agree{color:#176b1d;font-weight:600}td.disagree{color:#a11;font-weight:600}td.unsure{color:#8a5a00}
.legend span{white-space:nowrap;margin-right:10px;font-weight:600}.legend .v-yes{color:#176b1d}
.legend .v-no{color:#a11}.legend .v-worse{color:#800}.legend .v-floor{color:#0b5a7a}.legend .v-unsure{color:#8a5a00}.legend .v-fixed{color:#666}
details#provenance{margin-top:32px}details#provenance>summary{font-size:1.3em;font-weight:600;cursor:pointer}
table.kv th{text-align:right;padding-right:10px;color:#555;font-weight:500}table.kv td{font-family:ui-monospace,monospace}
.run{display:inline-block;vertical-align:top;margin:0 24px 12px 0}
figure.chart{margin:14px 0}figure.samples{display:inline-block;margin-right:12px}
figcaption{font-weight:600;margin-bottom:2px}.note{color:#555}pre{background:#f7f7f7;padding:8px;overflow:auto}
"""

LOADER = """
(function(){
  var errors=[];
  document.querySelectorAll('div.plotly-chart').forEach(function(div){
    var id=div.getAttribute('data-chart');
    var fig=JSON.parse(document.getElementById('data-'+id).textContent);
    Plotly.newPlot(div,fig.data||[],fig.layout||{},CONFIG).catch(function(e){errors.push(id+': '+e);console.error(e);});
  });
  window.scalebenchChartErrors=errors;
})();
"""


_KIND_OF_LABEL = {lab: KINDS[v] for v, lab in LABELS.items()}


def _legend_html() -> str:
    from scalebench.verdict.words import LABELS as VERDICT_LABELS
    from scalebench.verdict.words import MEANINGS

    return "".join(f'<span class="v-{KINDS[v]}">{esc(VERDICT_LABELS[v])}</span>{esc(MEANINGS[v])}. '
                   for v in VERDICT_LABELS)


def render_html(table_df: pd.DataFrame, chart_list: list[Chart], manifests: Mapping[str, dict[str, Any]],
                df: pd.DataFrame, rule: DecisionRule, pngs: Iterable[Path] = ()) -> str:
    """The page as one string (plotly.js inlined), top-down: table, main charts, more, samples, provenance."""
    import plotly

    plotly_js = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text(encoding="utf-8")
    metric = str(table_df["metric"].iloc[0]) if len(table_df) else "?"
    better = str(table_df["better"].iloc[0]) if len(table_df) else "?"
    from scalebench import __version__ as sb_version

    sections: dict[str, list[str]] = {"main": [], "more": [], "other": [], "samples": []}
    for c in chart_list:
        sections[c.section].append(_chart_html(c))
    png_links = "".join(f'<li><a href="png/{esc(p.name)}">{esc(p.name)}</a></li>' for p in pngs)
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    more = f"<h2>More charts: costs, S × K, latency</h2>{''.join(sections['more'])}" if sections["more"] else ""
    other = f"<h2>Other quality metrics</h2>{''.join(sections['other'])}" if sections["other"] else ""
    has_floor = "floor" in table_df.columns and table_df["floor"].notna().any()
    floor_note = (f"The grey band in the charts is the data floor: {esc(metric)} of real held-out data against the "
                  f"reference, mean ± {rule.floor_z:g} sd; values inside it cannot be told apart from real data."
                  if has_floor else "No data floor is recorded in these results, so no floor band is drawn.")
    chart_note = (f"{floor_note} Quality axes are logarithmic where the values span more than a decade."
                  if len(table_df) else "A speed-only run: latency per sample, log–log.")
    if len(table_df):
        table_block = f"""<p class="note">Quality metric <b>{esc(metric)}</b> ({esc(better)} is better).
{esc(str(table_df.attrs.get("header", "")))}
Seed columns: the seed document's classification of the family; <i>agrees</i> compares only the cells that
speak to scaling (▲, ▼, ■, —) with it. Methods varying both axes are judged at the other axis's largest value
(see the evidence).</p>
<p class="legend note">{_legend_html()}</p>
{_table_html(table_df)}
<details><summary>How the verdicts are decided</summary><p class="note">{esc(describe(rule))}</p></details>"""
    else:
        table_block = f'<p id="no-table">{esc(NO_TABLE)}</p>'
    table_block += _flags_html(df) + _args_html(df)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>scalebench report</title><style>{STYLE}</style>
<script>{plotly_js}</script>
</head><body>
<h1>scalebench report</h1>
<p class="note">Measured inference-time scaling along S (sequential commit steps) and K (refinement steps).
Generated {esc(generated)} by scalebench {esc(sb_version)}. Works offline; <a href="table.md">table.md</a> ·
<a href="table.csv">table.csv</a> · provenance at the end.</p>
<h2 id="table">Measured 2-axis scalability table</h2>
{table_block}
<h2 id="charts">Main charts</h2>
<p class="note">{chart_note}</p>
{''.join(sections['main'])}
{more}
{other}
<h2>Samples</h2>
<p class="note">16 stored samples per point: the cheapest and the most expensive grid point of each method.</p>
{''.join(sections['samples']) or '<p>no previews stored in these results</p>'}
{f'<h2>Static images</h2><ul>{png_links}</ul>' if png_links else ''}
<details id="provenance"><summary>Provenance: runs, specs, versions, commits</summary>
{_provenance_html(manifests, df)}
</details>
<script>var CONFIG={json.dumps(PLOTLY_CONFIG)};{LOADER}</script>
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
    chart_list = build_charts(df, metric, previews, points)
    manifests = {d.name: read_manifest(d) for d in run_dirs(paths)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pngs: list[Path] = []
    if png:
        from scalebench.report.images import write_pngs

        pngs = write_pngs({c.id: c.figure for c in chart_list}, out / "png")
    atomic_write_text(out / "table.md", markdown_table(table_df) if len(table_df) else NO_TABLE + "\n")
    atomic_write_text(out / "table.csv", table_df.to_csv(index=False))
    index = out / "index.html"
    atomic_write_text(index, render_html(table_df, chart_list, manifests, df, rule, pngs))
    return index
