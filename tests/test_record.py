"""The typed record: every committed record survives a round trip, and schema 1 migrates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalebench.errors import ResultsError
from scalebench.record import SCHEMA_VERSION, Floor, Record, migrate

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _set(d: object) -> object:
    """JSON without nulls (None and absent are the same in a record)."""
    if isinstance(d, dict):
        return {k: _set(v) for k, v in d.items() if v is not None}
    if isinstance(d, list):
        return [_set(v) for v in d]
    return d


def test_every_committed_record_round_trips() -> None:
    lines = [line for p in sorted(RESULTS.glob("**/points.jsonl")) for line in p.read_text().splitlines() if line]
    assert len(lines) > 500
    for line in lines:
        data = json.loads(line)
        rec = Record.from_json(data)
        out = rec.to_json()
        assert out["schema"] == SCHEMA_VERSION and _set(out) == _set(migrate(data))
        assert Record.from_json(out) == rec


def test_schema_1_floors_move_out_of_metrics() -> None:
    old = {"schema": 1, "point_id": "p", "status": "ok", "n": 200,
           "metrics": {"fid": 3.0, "fid_floor": 1.0, "fid_floor_sd": 0.2, "kid": 0.1, "orphan_floor": 5.0}}
    rec = Record.from_json(old)
    assert rec.metrics == {"fid": 3.0, "kid": 0.1, "orphan_floor": 5.0}  # a floor without its metric stays
    assert rec.floors == {"fid": Floor(mean=1.0, sd=0.2, n=200)}
    assert rec.compile is False and rec.cost.latency_s is None and rec.timing_mode == "contiguous"


def test_unknown_fields_survive_and_a_newer_schema_is_refused() -> None:
    rec = Record.from_json({"schema": 2, "point_id": "p", "status": "ok", "future": [1],
                            "cost": {"nfe": 3, "joules": 2.0}})
    assert rec.extra == {"future": [1]} and rec.cost.extra == {"joules": 2.0}
    assert rec.to_json()["future"] == [1] and rec.to_json()["cost"] == {"nfe": 3, "joules": 2.0}
    with pytest.raises(ResultsError, match="schema 3 is newer"):
        Record.from_json({"schema": 3, "point_id": "p", "status": "ok"})
