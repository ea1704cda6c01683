"""Pair the points of two sides: by point_id, else by settings (device included), the rest listed with a reason.

Ids differ when a checkpoint or the version changes between revisions, so settings are the
fallback; a CPU point is never paired with a CUDA one, and nothing unmatched is dropped.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from scalebench.gate.pooling import PooledPoint


@dataclass(frozen=True)
class Unmatched:
    side: Literal["baseline", "candidate"]
    point: str
    point_id: str
    reason: str


@dataclass(frozen=True)
class Match:
    baseline: PooledPoint
    candidate: PooledPoint
    by: Literal["point_id", "settings"]


def match_points(base: dict[str, PooledPoint], cand: dict[str, PooledPoint]
                 ) -> tuple[list[Match], list[Unmatched]]:
    """Pair points by point_id, then by settings (KEY_FIELDS); list the rest with a reason."""
    matches, unmatched = [], []
    for pid in sorted(base.keys() & cand.keys()):
        b, c = base[pid], cand[pid]
        if b.record.device != c.record.device:  # never gate a CPU point against a CUDA one
            why = (f"same point_id but measured on device {b.record.device} in the baseline and "
                   f"{c.record.device} in the candidate; points on different devices are never compared")
            unmatched += [Unmatched("baseline", b.label, pid, why), Unmatched("candidate", c.label, pid, why)]
        else:
            matches.append(Match(b, c, "point_id"))
    rest_b: dict[tuple, list[PooledPoint]] = defaultdict(list)
    rest_c: dict[tuple, list[PooledPoint]] = defaultdict(list)
    for pid in base.keys() - cand.keys():
        rest_b[base[pid].key].append(base[pid])
    for pid in cand.keys() - base.keys():
        rest_c[cand[pid].key].append(cand[pid])

    def newest(ps: list[PooledPoint]) -> PooledPoint:
        return max(ps, key=lambda p: (p.ok, str(p.record.ended_at or "")))

    for key in sorted(rest_b.keys() | rest_c.keys(), key=str):
        bs, cs = rest_b.get(key, []), rest_c.get(key, [])
        if bs and cs:
            b, c = newest(bs), newest(cs)
            matches.append(Match(b, c, "settings"))
            for side, ps, chosen in (("baseline", bs, b), ("candidate", cs, c)):
                unmatched += [Unmatched(side, p.label, p.point_id, "same settings as a matched point but another "
                                        "point_id (other metrics or timing settings); the newest was compared")
                              for p in ps if p is not chosen]
            continue
        side, ps = ("baseline", bs) if bs else ("candidate", cs)
        other, other_side = ("candidate", cand) if side == "baseline" else ("baseline", base)
        reason = (f"its settings match a {other} point already compared by point_id (this one differs in "
                  "metrics or timing settings)" if any(q.key == key for q in other_side.values())
                  else f"no point with these settings in the {other}")
        unmatched += [Unmatched(side, p.label, p.point_id, reason) for p in ps]
    matches.sort(key=lambda m: tuple(str(v) for v in m.baseline.key))
    return matches, unmatched
