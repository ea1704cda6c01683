"""Scaling laws of inference compute: how fast quality approaches the data as compute grows.

- `fit`        — one curve (replicates × compute values): the power law with an irreducible term,
  z(C) = z∞ + a·C^(−α), its exponent with a 95 % jackknife-t interval over replicates, the fit's
  lack-of-fit test, the compute where it enters the data-floor band, or "no power law";
- `curves`     — the curves of a results table (`results.load_results`): per row, axis and compute
  measure (NFE, FLOPs, latency per sample), on the slice the scalability table judges;
- `columns`    — the α columns the scalability table and `table.csv` carry;
- `allocation` — for rows that vary S and K: the compute-optimal (S, K) per budget, measured and on a
  smooth fit of the surface, and "spend on S / on K / either";
- `frontier`   — the best quality reachable per FLOP and per second across families (flagged points out);
- `figures`    — plotly figures of the above; `docs` writes docs/scaling-laws.md from committed records.

benchmarks/scaling_calibration.py measures the intervals' coverage and the decisions' error rates on
synthetic surfaces of known truth (docs/scaling-laws.md).
"""
