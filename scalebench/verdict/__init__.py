"""Does quality improve along one axis? The verdict rule of the scalability table, in three parts.

- `stats`  — the statistic: the effect of an axis on one metric per replicate (log ratio of the
  metric from the smallest to the largest axis values, unclipped), its 95 % interval and the
  one-sided p-values the decision needs (improves, worse, no gain, at the data floor);
- `decide` — the decision: multiplicity-adjusted p-values → one verdict per cell
  (▲ improves, ▼ worse, ■ no gain, ● at the data floor, ? inconclusive, — fixed);
- `words`  — the words: marks, the effect with its interval, the reason, the rule's description.

docs/scalability-table.md states the rule; benchmarks/verdict_calibration.py measures its error
rates on synthetic surfaces of known truth.
"""
