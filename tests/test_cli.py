"""The command line: bad input is one line and exit code 2; a third-party plugin sweeps."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scalebench.cli import app
from scalebench.results import iter_records
from tests.conftest import toy_spec

runner = CliRunner(env={"COLUMNS": "200"})
ROOT = Path(__file__).resolve().parents[1]


def _toml(spec: dict) -> str:
    lines = []
    for k, v in spec.items():
        if k not in ("timing", "generators"):
            lines.append(f"{k} = {json.dumps(v)}")
    lines.append("[timing]")
    lines += [f"{k} = {json.dumps(v)}" for k, v in spec["timing"].items()]
    for g in spec["generators"]:
        lines.append("[[generators]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in g.items()]
    return "\n".join(lines) + "\n"


def _write(tmp_path: Path, spec: dict, name: str = "spec.toml") -> Path:
    p = tmp_path / name
    p.write_text(_toml(spec))
    return p


@pytest.mark.parametrize("args, needle", [
    (["run", "nope.toml"], "does not exist"),
    (["run", "SPEC", "--only", "gptt"], "did you mean 'gpt'"),
    (["run", "SPEC", "--device", "tpu"], "device = 'tpu'"),
    (["run", "BAD"], "malformed TOML"),
    (["run", "BADK"], "K=1000 is not valid"),
    (["export", "missing-dir"], "does not exist"),
    (["train", "no_such_model"], "unknown trainable model 'no_such_model'"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, args, needle) -> None:
    spec = _write(tmp_path, toy_spec())
    (tmp_path / "bad.toml").write_text("name = [unclosed\n")
    badk = _write(tmp_path, toy_spec(generators=[{"name": "toy", "K": [1000]}]), "badk.toml")
    args = [{"SPEC": str(spec), "BAD": str(tmp_path / "bad.toml"), "BADK": str(badk)}.get(a, a) for a in args]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    out = res.output.strip()
    assert needle in out and "Traceback" not in out
    assert len(out.splitlines()) <= 2  # rich may wrap one logical line


def test_bad_input_loses_nothing_recorded(tmp_path) -> None:
    spec = _write(tmp_path, toy_spec())
    run_dir = tmp_path / "run"
    assert runner.invoke(app, ["run", str(spec), "--out", str(run_dir), "--no-progress"]).exit_code == 0
    before = (run_dir / "points.jsonl").read_text()
    bad = _write(tmp_path, toy_spec(generators=[{"name": "toy", "K": [0]}]), "bad.toml")
    assert runner.invoke(app, ["run", str(bad), "--out", str(run_dir)]).exit_code == 2
    assert (run_dir / "points.jsonl").read_text() == before


def test_run_list_export(tmp_path) -> None:
    spec = _write(tmp_path, toy_spec())
    res = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "run"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "2 run, 0 failed" in res.output
    res = runner.invoke(app, ["list"])
    assert res.exit_code == 0 and "diffusion" in res.output and "gpt" in res.output
    res = runner.invoke(app, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "t")])
    assert res.exit_code == 0 and (tmp_path / "t.parquet").exists() and (tmp_path / "t.csv").exists()


def test_third_party_generator_via_entry_point(tmp_path) -> None:
    """Install a plugin package (pip --target) and sweep it with the real CLI in a subprocess."""
    site, src = tmp_path / "site", tmp_path / "plugin_pkg"
    shutil.copytree(ROOT / "tests" / "plugin_pkg", src)  # the build writes beside its sources
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(src)], check=True)
    spec = toy_spec(generators=[{"name": "plugin-noise"}])
    spec_path = _write(tmp_path, spec)
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    cli = [sys.executable, "-m", "scalebench.cli"]
    out = subprocess.run([*cli, "list"], env=env, capture_output=True, text=True, check=True).stdout
    assert "plugin-noise" in out
    res = subprocess.run([*cli, "run", str(spec_path), "--out", str(tmp_path / "run"), "--no-progress"],
                         env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    recs = list(iter_records(tmp_path / "run"))
    assert [r.generator for r in recs] == ["plugin-noise"] and recs[0].status == "ok"
    identity = recs[0].identity
    assert "external" not in json.dumps(identity) and len(identity["code"]) == 12  # the plugin's source hash
    assert recs[0].cost.nfe_measured == 1
    chk = subprocess.run([*cli, "check", "plugin-noise"], env=env, capture_output=True, text=True)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    assert chk.stdout.count("PASS plugin-noise") == 8 and "FAIL" not in chk.stdout
