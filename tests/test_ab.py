"""`scalebench ab`: a real interleaved A/B run between a git revision and the working tree.

The tests build a throw-away git repository from this checkout's package (tracked and
untracked, not ignored files), so they behave the same on a clean CI clone and mid-edit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = """\
name = "ab-test"
samples = 32
batch_size = 32
metrics = []

[timing]
warmup = 1
min_repeats = 10
min_duration_s = 0.05
max_repeats = 20

[[generators]]
name = "sleepy"
S = [2]
K = [4]
"""


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout


def _repo(tmp_path: Path, with_history: bool = False) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    if with_history:  # a first commit that predates the package
        (repo / "README.md").write_text("before scalebench\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "empty")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "scalebench", "pyproject.toml"],
                           cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
    for f in files:
        if (ROOT / f).is_file():
            (repo / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, repo / f)
    (repo / "ab-test.toml").write_text(SPEC)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "snapshot")
    return repo


def _ab(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("SCALEBENCH_SLEEPY_SLOWDOWN", None)
    return subprocess.run([sys.executable, "-m", "scalebench.cli", "ab", *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("args, needle", [
    (["no-such-branch"], "is not a commit"),
    (["HEAD~1"], "predates scalebench"),
    (["HEAD", "--spec", "missing.toml"], "does not exist"),
    (["HEAD", "--rounds", "0"], "--rounds 0"),
    (["HEAD", "--import", "no_such_module"], "--import no_such_module"),
    (["HEAD", "--threshold", "fast"], "not a percentage"),
])
def test_ab_refuses_bad_input_with_one_line(tmp_path, monkeypatch, args, needle) -> None:
    from typer.testing import CliRunner

    from scalebench.cli import app

    repo = _repo(tmp_path, with_history=True)
    monkeypatch.chdir(repo)
    res = CliRunner().invoke(app, ["ab", *args, *([] if "--spec" in args else ["--spec", "ab-test.toml"])])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert not list(repo.glob("results/ab-*/baseline/round-*/points.jsonl"))


@pytest.mark.slow
def test_ab_catches_a_slower_working_tree_at_the_defaults(tmp_path) -> None:
    """HEAD is the snapshot; the working tree makes every sleepy network call 3× the work.
    Default rounds, threshold, α and correction: the paired t-test over the rounds fires."""
    repo = _repo(tmp_path)
    testing = repo / "scalebench" / "testing.py"
    testing.write_text(testing.read_text().replace("blocks: int = 40", "blocks: int = 120"))
    out = tmp_path / "ab"
    res = _ab(repo, "HEAD", "--spec", "ab-test.toml", "--out", str(out),
              "--import", "scalebench.testing", "--threads", "1", "--json", "--seed", "3")
    assert res.returncode == 1, res.stdout + res.stderr
    report = json.loads(res.stdout)
    lat = [r for r in report["rows"] if r["metric"] == "latency_s"]
    assert len(lat) == 1 and lat[0]["verdict"] == "regression" and lat[0]["ratio"] > 1.5
    assert "paired t over 6 rounds" in lat[0]["test"] and lat[0]["ratio_ci"][0] > 1.2
    # the working tree changed the generator's code, so its point ids differ (the code hash is part of
    # a point's identity) and the two sides pair up by settings instead
    assert lat[0]["matched_by"] == "settings" and not report["unmatched"]
    meta = json.loads((out / "ab.json").read_text())
    order = [(r["round"], r["side"]) for r in meta["runs"]]
    assert [r for r, _ in order] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert all({s for _, s in order[i:i + 2]} == {"baseline", "candidate"} for i in range(0, 12, 2))  # back to back
    assert order == [tuple(o) for o in meta["order"]]
    head = _git(repo, "rev-parse", "HEAD").strip()
    base_rec = json.loads((out / "baseline" / "round-0" / "points.jsonl").read_text().splitlines()[0])
    cand_rec = json.loads((out / "candidate" / "round-0" / "points.jsonl").read_text().splitlines()[0])
    assert base_rec["provenance"]["git_commit"] == head  # the baseline really ran the revision's code
    assert cand_rec["provenance"]["git_commit"] == head + "+dirty"
    assert json.loads((out / "compare.json").read_text())["verdict"] == "regression"
    assert not (tmp_path / "repo" / ".git" / "worktrees").exists() or not any((repo / ".git" / "worktrees").iterdir())
    # The same revision against itself passes (a generous threshold keeps a loaded CI machine quiet).
    testing.write_text(testing.read_text().replace("blocks: int = 120", "blocks: int = 40"))
    res = _ab(repo, "HEAD", "--spec", "ab-test.toml", "--rounds", "2", "--out", str(out),
              "--import", "scalebench.testing", "--threads", "1", "--threshold", "50%")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK" in res.stdout and "A/B of the working tree against HEAD" in res.stdout
