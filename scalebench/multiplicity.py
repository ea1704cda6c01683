"""Multiplicity corrections, written once for the speed gate and the scalability table."""

from __future__ import annotations

from collections.abc import Sequence

CORRECTIONS = ("holm", "bh", "none")


def adjust_p_values(ps: Sequence[float], method: str) -> list[float]:
    """Multiplicity-adjusted p-values: Holm–Bonferroni ("holm", family-wise error ≤ α under any
    dependence), Benjamini–Hochberg ("bh", false discovery rate ≤ α for independent or positively
    dependent tests) or "none". Reject where the adjusted p < α. The caller validates `method`."""
    if method not in CORRECTIONS:
        raise ValueError(f"correction {method!r}; use one of {', '.join(CORRECTIONS)}")
    m = len(ps)
    if method == "none" or m <= 1:
        return [float(p) for p in ps]
    order = sorted(range(m), key=lambda i: ps[i])
    adj = [0.0] * m
    if method == "holm":
        running = 0.0
        for rank, i in enumerate(order):  # step down: (m − rank)·p, kept monotone
            running = max(running, min(1.0, (m - rank) * ps[i]))
            adj[i] = running
    else:
        running = 1.0
        for rank in range(m - 1, -1, -1):  # step up: m/(rank+1)·p, kept monotone from the top
            i = order[rank]
            running = min(running, min(1.0, m / (rank + 1) * ps[i]))
            adj[i] = running
    return adj
