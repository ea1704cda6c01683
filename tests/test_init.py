"""`scalebench init`: the starter spec and plugin skeleton it writes work as written.

The generated plugin is made discoverable the way `pip install` would (a dist-info with the entry
points that the generated pyproject.toml declares, on PYTHONPATH beside the package), without pip:
the contract suite and a small sweep of the generated spec then run on it through the real CLI.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scalebench.cli import app
from scalebench.results import latest_records

ROOT = Path(__file__).resolve().parents[1]
FILES = ["my-spec.toml", "my-model/pyproject.toml", "my-model/my_model/__init__.py",
         "my-model/my_model/generator.py"]
runner = CliRunner()


def _init(target: Path) -> None:
    res = runner.invoke(app, ["init", str(target)])
    assert res.exit_code == 0, res.output
    for f in FILES:
        assert (target / f).is_file(), f
        assert f"wrote {target / f}" in res.output


def test_init_writes_the_starter_and_never_overwrites(tmp_path) -> None:
    target = tmp_path / "new" / "dir"  # created when missing
    _init(target)
    spec = tomllib.loads((target / "my-spec.toml").read_text())
    assert spec["name"] == "my-spec" and [g["name"] for g in spec["generators"]] == ["my-model", "diffusion"]
    (target / "my-model" / "pyproject.toml").write_text("mine\n")
    res = runner.invoke(app, ["init", str(target)])
    assert res.exit_code == 2 and "already exists" in res.output and "never overwrites" in res.output
    assert len(res.output.strip().splitlines()) <= 2 and "Traceback" not in res.output
    assert (target / "my-model" / "pyproject.toml").read_text() == "mine\n"


def test_init_refuses_when_one_file_exists_and_writes_nothing(tmp_path) -> None:
    (tmp_path / "my-spec.toml").write_text("# the user's own\n")
    res = runner.invoke(app, ["init", str(tmp_path)])
    assert res.exit_code == 2 and "my-spec.toml already exists" in res.output
    assert not (tmp_path / "my-model").exists()  # all or nothing


def test_init_into_a_file_is_one_line(tmp_path) -> None:
    (tmp_path / "f").write_text("x")
    res = runner.invoke(app, ["init", str(tmp_path / "f")])
    assert res.exit_code == 2 and "Traceback" not in res.output


def _as_if_installed(target: Path, site: Path) -> dict[str, str]:
    """A dist-info carrying the entry points of the generated pyproject.toml (what pip would write)."""
    meta = tomllib.loads((target / "my-model" / "pyproject.toml").read_text())
    eps = meta["project"]["entry-points"]["scalebench.generators"]
    assert eps == {"my-model": "my_model.generator:MyGenerator"}
    info = site / "my_model-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['project']['name']}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[scalebench.generators]\n" +
                                           "".join(f"{k} = {v}\n" for k, v in eps.items()))
    return {**os.environ, "COLUMNS": "200",
            "PYTHONPATH": os.pathsep.join([str(site), str(target / "my-model"), str(ROOT)])}


CLI = [sys.executable, "-m", "scalebench.cli"]


def test_generated_plugin_passes_the_contract(tmp_path) -> None:
    target = tmp_path / "proj"
    _init(target)
    env = _as_if_installed(target, tmp_path / "site")
    chk = subprocess.run([*CLI, "check", "my-model"], env=env, capture_output=True, text=True, timeout=300)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    assert chk.stdout.count("PASS my-model") == 8 and "FAIL" not in chk.stdout


@pytest.mark.slow
def test_generated_spec_sweeps_the_generated_plugin(tmp_path) -> None:
    target = tmp_path / "proj"
    _init(target)
    env = _as_if_installed(target, tmp_path / "site")
    # the generated spec, shrunk to a few seconds (every key kept: it must parse and plan as written)
    spec = target / "my-spec.toml"
    text = spec.read_text()
    for old, new in [("seeds = [0, 1, 2]", "seeds = [0]"), ("samples = 1000", "samples = 200"),
                     ("batch_size = 250", "batch_size = 100"), ("rounds = 3", "rounds = 1"),
                     ("K = [1, 2, 4, 8, 16]", "K = [1, 4]")]:
        assert old in text, old
        text = text.replace(old, new)
    spec.write_text(text)
    out = tmp_path / "run"
    res = subprocess.run([*CLI, "run", str(spec), "--only", "my-model", "--out", str(out), "--no-progress"],
                         cwd=target, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    recs = list(latest_records(out).values())
    assert sorted(r.K for r in recs) == [1, 4] and all(r.ok and r.generator == "my-model" for r in recs)
    assert [r.cost.nfe_measured for r in sorted(recs, key=lambda r: r.K)] == [1, 4]


def test_generated_python_is_lint_clean(tmp_path) -> None:
    _init(tmp_path)
    ruff = Path(sys.executable).parent / "ruff"
    res = subprocess.run([str(ruff), "check", "--no-cache", "--isolated", "--line-length", "120",
                          "--select", "E,F,I,B,UP", str(tmp_path / "my-model")], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
