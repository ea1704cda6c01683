"""Reports: the measured 2-axis scalability table, Plotly charts and the self-contained HTML page.

Modules (import the one you need; this package imports nothing heavy so the CLI stays fast):

- `table`    — `scalability_table(df)`: the rule applied to every generator × sampler
- `tablefmt` — the table as display strings, Markdown and a rich Table
- `charts`   — one Plotly figure per view of the tidy results
- `previews` — sample grids from the previews stored in each record
- `html`     — `write_report(paths, out_dir)`: index.html (offline), table.md, table.csv
- `images`   — static PNGs of the charts via kaleido + a local Chromium
- `commands` — bodies of `scalebench table` and `scalebench report`
"""
