"""scalebench runs anywhere after `pip install`: shipped specs by name, package data, metadata, release.

The default tests check the resolver, the metadata and the release workflow; the slow one builds the
wheel, installs it into a fresh venv outside the repository (its dependencies from this .venv through
a .pth file: no network) and runs `scalebench run quick --only gan` and `scalebench init` in an empty
directory.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from scalebench.cli import app
from scalebench.specs import resolve_spec, shipped
from scalebench.sweep.spec import load_spec
from tests.test_history_workflow import _lint

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["ci-speed", "full", "likelihoods", "quick"]
RELEASE = ROOT / ".github/workflows/release.yml"
runner = CliRunner()


def test_shipped_specs_load_by_name_from_any_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert list(shipped()) == SHIPPED
    for name in SHIPPED:
        s = load_spec(name)
        assert s.name == name and s.source == f"scalebench/specs/{name}.toml"  # no install path in records
        assert load_spec(f"{name}.toml").source == s.source  # `quick.toml` with no such file here: the same
    assert load_spec(ROOT / "scalebench/specs/quick.toml").source == "scalebench/specs/quick.toml"


def test_a_file_wins_over_a_shipped_name(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("quick").write_text('name = "mine"\n[[generators]]\nname = "gan"\n')
    Path("full.toml").write_text('name = "mine-full"\n[[generators]]\nname = "gan"\n')
    Path("ci-speed").mkdir()  # a directory is no spec: the name still means the shipped one
    assert load_spec("quick").name == "mine" and load_spec("full.toml").name == "mine-full"
    assert resolve_spec("ci-speed") == shipped()["ci-speed"]


@pytest.mark.parametrize("arg, needle", [
    ("quik", "(did you mean quick?); shipped specs: ci-speed, full, likelihoods, quick"),
    ("nosuch", "shipped specs: ci-speed, full, likelihoods, quick; or pass the path of a TOML file"),
    ("nosuch.toml", "'nosuch.toml' does not exist; pass a TOML file or a shipped spec (ci-speed, full,"),
    ("a/quick", "'a/quick' does not exist"),  # a path is never read as a name
])
def test_unknown_name_or_missing_path_is_one_line(tmp_path, monkeypatch, arg, needle) -> None:
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["run", arg])
    assert res.exit_code == 2 and needle in res.output, res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) <= 2


def test_run_without_argument_is_quick_into_results_quick(tmp_path, monkeypatch) -> None:
    """No sweep needed to see the defaults: a file where the default run directory goes is refused
    after the spec (quick) loaded, naming ./results/quick."""
    monkeypatch.chdir(tmp_path)
    Path("results").mkdir()
    Path("results/quick").write_text("not a run")
    res = runner.invoke(app, ["run"])
    assert res.exit_code == 2 and "run directory results/quick is a file" in res.output, res.output


def test_every_command_that_takes_a_spec_defaults_to_a_shipped_name() -> None:
    from scalebench.gate.ab import DEFAULT_SPEC
    from scalebench.gate.cli import ab_cmd
    from scalebench.history.commands import backfill_cmd

    for fn in (ab_cmd, backfill_cmd):
        assert inspect.signature(fn).parameters["spec"].default == "ci-speed"
    assert DEFAULT_SPEC == "ci-speed" and resolve_spec(DEFAULT_SPEC, ROOT).is_file()


def _outside_generated_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, line) of a file, less the lines between `<!-- generated:… -->` markers."""
    out, inside = [], False
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("<!-- generated:"):
            inside = True
        elif line.startswith("<!-- /generated:"):
            inside = False
        elif not inside:
            out.append((i, line))
    return out


def test_no_reference_to_the_old_spec_paths() -> None:
    """The specs moved from benchmarks/ to scalebench/specs/: tracked files name them there (or by name).
    Committed run records keep the path they were run with (results/ is history), and so do the docs'
    generated blocks, which quote each record's `spec_source`."""
    old = re.compile(r"benchmarks/(quick|full|ci-speed|likelihoods)\.toml")
    files = subprocess.run(["git", "grep", "-l", "-E", old.pattern, "--", ".", ":!results"], cwd=ROOT,
                           capture_output=True, text=True).stdout.split()
    stale = [f"{f}:{i}: {line.strip()}" for f in files for i, line in _outside_generated_blocks(ROOT / f)
             if old.search(line)]
    assert stale == [], "stale spec paths (use scalebench/specs/<name>.toml or the name):\n" + "\n".join(stale)


def test_pyproject_license_and_package_data() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["license"] == "MIT"  # an SPDX expression, not the deprecated table
    for pattern in project["license-files"]:
        assert list(ROOT.glob(pattern)), pattern
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    data = meta["tool"]["setuptools"]["package-data"]
    assert data["scalebench.specs"] == ["*.toml"] and "zoo/*.safetensors" in data["scalebench"]
    assert {"build", "twine"} <= set(project["optional-dependencies"]["dev"])


def test_release_workflow_lints_clean() -> None:
    res = _lint(RELEASE)
    assert res.returncode == 0 and res.stdout == "", res.stdout + res.stderr


def test_release_workflow_builds_checks_and_publishes_on_a_tag() -> None:
    wf = yaml.safe_load(RELEASE.read_text(encoding="utf-8"))
    assert wf[True] == {"push": {"tags": ["v*"]}}  # YAML 1.1 reads the key `on` as True
    assert wf["permissions"] == {"contents": "read"}  # the OIDC token only where it publishes
    build, publish = wf["jobs"]["build"], wf["jobs"]["publish"]
    script = "\n".join(s.get("run", "") for s in build["steps"])
    assert "python -m build" in script and "twine check --strict dist/*" in script
    assert publish["needs"] == "build" and publish["permissions"] == {"id-token": "write"}
    assert publish["environment"]["name"] == "pypi"
    assert publish["steps"][-1]["uses"].startswith("pypa/gh-action-pypi-publish@")
    uses = [s["uses"] for job in wf["jobs"].values() for s in job["steps"] if "uses" in s]
    assert uses and all(re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u) for u in uses), uses  # pinned to SHAs


def _build(out: Path) -> tuple[Path, Path]:
    """sdist + wheel of this tree into `out` (no isolation: setuptools from this .venv, no network)."""
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True, timeout=600)
    (wheel,), (sdist,) = out.glob("*.whl"), out.glob("*.tar.gz")
    return wheel, sdist


@pytest.mark.slow
def test_wheel_installs_and_runs_quick_in_an_empty_directory(tmp_path) -> None:
    wheel, sdist = _build(tmp_path / "dist")
    chk = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
                         capture_output=True, text=True)
    assert chk.returncode == 0 and chk.stdout.count("PASSED") == 2, chk.stdout + chk.stderr
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(["git", "ls-files", "scalebench"], cwd=ROOT, check=True, capture_output=True,
                             text=True).stdout.split()
    data = [f for f in tracked if not f.endswith(".py")]
    assert data and [f for f in data if f not in names] == []  # checkpoints, zoo/*.json, specs, templates
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in meta and any(n.endswith(".dist-info/licenses/LICENSE") for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, timeout=300)
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # the dependencies (torch, …) from this .venv; its .pth files are not run, so its editable
    # scalebench stays out of sys.path and the wheel's copy is the one imported
    (Path(site) / "scalebench-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")

    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(COLUMNS="200", SCALEBENCH_CACHE=str(tmp_path / "cache"))  # cold caches, as on a new machine
    where = subprocess.run([str(py), "-c", "import scalebench; print(scalebench.__file__)"], cwd=empty, env=env,
                           check=True, capture_output=True, text=True).stdout.strip()
    assert where.startswith(site), where
    sb = str(venv / "bin" / "scalebench")
    res = subprocess.run([sb, "run", "quick", "--only", "gan", "--no-progress"], cwd=empty, env=env,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    run_dir = empty / "results" / "quick"
    recs = [json.loads(line) for line in (run_dir / "points.jsonl").read_text().splitlines()]
    assert recs and all(r["generator"] == "gan" and r["status"] == "ok" for r in recs)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["spec_source"] == "scalebench/specs/quick.toml"
    res = subprocess.run([sb, "init"], cwd=empty, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (empty / "my-spec.toml").is_file() and (empty / "my-model/my_model/generator.py").is_file()
