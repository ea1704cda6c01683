"""Interleaved timing rounds: seeded shuffled order, resume after an interrupted timing phase, noisy flag."""

from __future__ import annotations

import time

import pytest

import scalebench.sweep.measure as measure
from scalebench.results import iter_records, latest_records
from scalebench.sweep.runner import run_sweep
from scalebench.sweep.spec import parse_spec
from tests.conftest import INTERLEAVED, toy_spec

FOUR = [{"name": "toy", "samplers": ["a"], "K": [1, 2, 3, 4]}]


def _latest(run_dir) -> list[dict]:
    return sorted(latest_records(run_dir).values(), key=lambda r: r.K)


def test_each_round_visits_every_point_once_in_a_seeded_shuffle(tmp_path) -> None:
    spec = parse_spec(toy_spec(generators=FOUR, timing=INTERLEAVED))
    run_sweep(spec, tmp_path / "a", progress=False)
    recs = _latest(tmp_path / "a")
    rounds = [[r.timing.positions[i] for r in recs] for i in range(spec.timing.rounds)]
    assert all(sorted(o) == [0, 1, 2, 3] for o in rounds)  # a permutation: every point, once
    assert len({tuple(o) for o in rounds}) > 1  # shuffled, not one fixed order
    assert {r.timing.order_seed for r in recs} == {spec.timing_order_seed()}
    run_sweep(spec, tmp_path / "b", progress=False)
    assert [r.timing.positions for r in _latest(tmp_path / "b")] == [r.timing.positions for r in recs]


def test_contiguous_mode_times_each_point_in_one_block(tmp_path) -> None:
    run_sweep(parse_spec(toy_spec(generators=FOUR, timing={"mode": "contiguous", "min_duration_s": 0})), tmp_path / "run", progress=False)
    recs = list(iter_records(tmp_path / "run"))
    assert len(recs) == 4 and {r.timing.mode for r in recs} == {"contiguous"}
    assert all(r.cost.latency_s > 0 for r in recs)


def test_interrupted_timing_keeps_quality_and_resume_only_retimes(tmp_path, monkeypatch) -> None:
    spec = parse_spec(toy_spec(generators=FOUR, timing=INTERLEAVED))

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(measure, "time_rounds", interrupt)
    r1 = run_sweep(spec, tmp_path / "run", progress=False)
    assert r1.interrupted
    pending = _latest(tmp_path / "run")
    assert [r.timing.mode for r in pending] == ["pending"] * 4
    assert all(r.cost.latency_s is None and r.status == "ok" for r in pending)
    monkeypatch.undo()

    def no_quality_pass(point):
        raise AssertionError("the quality pass was redone")

    monkeypatch.setattr(measure, "execute_point", no_quality_pass)
    r2 = run_sweep(spec, tmp_path / "run", progress=False)
    assert (r2.interrupted, r2.failed) == (False, 0)
    done = _latest(tmp_path / "run")
    assert [r.timing.mode for r in done] == ["interleaved"] * 4
    assert [r.preview for r in done] == [r.preview for r in pending]
    assert all(r.cost.latency_s > 0 for r in done)
    assert run_sweep(spec, tmp_path / "run", progress=False).ran == 0  # finished: nothing left


def test_a_planted_slow_round_is_flagged_noisy(tmp_path, monkeypatch) -> None:
    original, original_rounds = measure._sampler, measure.time_rounds
    seen = {"n": 0, "rounds": False}

    def rounds(*a, **k):
        seen["rounds"] = True
        return original_rounds(*a, **k)

    def slow_once(ld, point, size, rng):
        fn = original(ld, point, size, rng)
        if point.K != 3:
            return fn

        def call():
            seen["n"] += seen["rounds"]
            if seen["n"] == 3:  # one slow batch in the third timing round of this point
                time.sleep(0.1)
            return fn()
        return call

    monkeypatch.setattr(measure, "_sampler", slow_once)
    monkeypatch.setattr(measure, "time_rounds", rounds)
    run_sweep(parse_spec(toy_spec(generators=FOUR, timing={**INTERLEAVED, "min_repeats": 1})), tmp_path / "run", progress=False)
    recs = {r.K: r for r in _latest(tmp_path / "run")}
    assert recs[3].timing.noisy is True and any("noisy" in w for w in recs[3].warnings)
    assert [recs[k].timing.noisy for k in (1, 2, 4)] == [False] * 3
    assert max(recs[3].timing.samples_s) >= 0.1 and recs[3].cost.latency_s < 0.01
    from scalebench.results import load_results
    from scalebench.summary import summary_frame

    s = summary_frame(load_results(tmp_path / "run"))
    assert s.set_index("K")["noisy"].to_dict() == {1: False, 2: False, 3: True, 4: False}


@pytest.mark.parametrize("bad", ["sometimes", 3])
def test_unknown_timing_mode_is_rejected(bad) -> None:
    from scalebench.sweep.spec import SpecError

    with pytest.raises(SpecError, match="mode"):
        parse_spec(toy_spec(generators=FOUR, timing={**INTERLEAVED, "mode": bad}))


def test_steady_allocator_is_a_recorded_setting(tmp_path) -> None:
    """The allocator setting enters the point identity and every record; a non-bool is refused."""
    from scalebench.results import iter_records
    from scalebench.sweep.plan import expand
    from scalebench.sweep.runner import run_sweep
    from scalebench.sweep.spec import SpecError, parse_spec
    from tests.conftest import toy_spec

    on = parse_spec(toy_spec())
    off = parse_spec(toy_spec(timing={**toy_spec()["timing"], "steady_allocator": False}))
    assert on.timing.steady_allocator and not off.timing.steady_allocator
    # the allocator changes timing, not samples: same points, another timing key (re-timed on resume)
    assert [p.point_id for p in expand(on)] == [p.point_id for p in expand(off)]
    assert not {p.timing_key for p in expand(on)} & {p.timing_key for p in expand(off)}
    with pytest.raises(SpecError, match="steady_allocator = 1 must be true or false"):
        parse_spec(toy_spec(timing={**toy_spec()["timing"], "steady_allocator": 1}))
    run_sweep(on, tmp_path / "on", progress=False)
    rec = list(iter_records(tmp_path / "on"))[-1]
    assert rec.allocator["steady"] is True and rec.allocator["trim_threshold"] == 1 << 30
    run_sweep(off, tmp_path / "off", progress=False)
    assert list(iter_records(tmp_path / "off"))[-1].allocator["steady"] is False


def test_a_resume_with_other_threads_re_times_without_re_sampling(tmp_path, monkeypatch) -> None:
    """Threads are part of the timing key, not of the point's identity (issue 26: any executor resumes)."""
    run_sweep(parse_spec(toy_spec(generators=FOUR, timing=INTERLEAVED, threads=1)), tmp_path / "run", progress=False)
    before = {r.point_id: r for r in _latest(tmp_path / "run")}
    monkeypatch.setattr(measure, "execute_point", lambda p: pytest.fail(f"re-sampled {p.label()}"))
    res = run_sweep(parse_spec(toy_spec(generators=FOUR, timing=INTERLEAVED, threads=2)), tmp_path / "run",
                    progress=False)
    assert res.skipped == 4 and res.ran == 0 and res.failed == 0
    after = {r.point_id: r for r in _latest(tmp_path / "run")}
    assert after.keys() == before.keys()
    for pid, r in after.items():
        assert (r.threads, r.sampled_threads) == (2, 1) and r.timing_key != before[pid].timing_key
        assert r.metrics == before[pid].metrics and r.preview == before[pid].preview
        assert r.timing.samples_s != before[pid].timing.samples_s  # timed again
    again = run_sweep(parse_spec(toy_spec(generators=FOUR, timing=INTERLEAVED, threads=2)), tmp_path / "run",
                      progress=False)
    assert again.ran == 0 and len(list(iter_records(tmp_path / "run"))) == 12  # 4 pending + 4 timed + 4 re-timed
