"""Reports: the measured 2-axis scalability table, Plotly charts and the self-contained HTML page.

Modules (import the one you need; this package imports nothing heavy so the CLI stays fast):

- `table`    — `scalability_table(df)`: the rule applied to every generator × sampler
- `tablefmt` — the table as display strings, Markdown and a rich Table
- `grid`     — the one-screen summary grid at the top of the page
- `charts`   — one Plotly figure per view of the tidy results (small multiples, frontiers, …)
- `identity` — one colour + marker + dash per method, the same in every chart and report
- `previews` — sample grids (PNGs) from the previews stored in each record
- `assets`   — plotly.js (compressed, once) and figure JSON for the page
- `html`     — `write_report(paths, out_dir)`: index.html (offline), table.md, table.csv
- `images`   — static PNGs of the charts via kaleido + a local Chromium
- `commands` — bodies of `scalebench table` and `scalebench report`
"""
