"""`scalebench history backfill`: each commit runs with its own code (a git worktree), filed under its sha.

Slow (three real runs of the `sleepy` timing double); the throw-away repository is test_ab's.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scalebench.history.series import histories
from scalebench.history.store import entries
from tests.test_ab import SPEC, _git, _repo


@pytest.mark.slow
def test_backfill_runs_each_commit_with_its_own_code(tmp_path, monkeypatch):
    import scalebench.testing  # noqa: F401 — registers `sleepy` for the spec check in this process
    from scalebench.history.backfill import backfill

    repo = _repo(tmp_path)
    testing = repo / "scalebench" / "testing.py"
    shas = [_git(repo, "rev-parse", "HEAD").strip()]
    (repo / "notes.txt").write_text("no code change\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "a commit that changes nothing")
    shas.append(_git(repo, "rev-parse", "HEAD").strip())
    testing.write_text(testing.read_text().replace("blocks: int = 40", "blocks: int = 160"))
    _git(repo, "commit", "-qam", "sleepy does 4x the work")
    shas.append(_git(repo, "rev-parse", "HEAD").strip())
    assert "sleepy" in SPEC
    monkeypatch.delenv("SCALEBENCH_SLEEPY_SLOWDOWN", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    store = tmp_path / "store"
    filed = list(backfill(shas, store, repo / "ab-test.toml", machine="box", threads=1, root=repo,
                          imports=("scalebench.testing",)))
    assert [e.commit for e in filed] == shas and [e.subject for e in filed][2] == "sleepy does 4x the work"
    assert list(backfill(shas[:1], store, repo / "ab-test.toml", machine="box", root=repo,
                         imports=("scalebench.testing",))) == []  # already filed: resumes, no re-run
    (point,) = histories(entries(store))
    lat = [r.latency for r in point.runs]
    assert [r.entry.commit for r in point.runs] == shas
    assert lat[2] / lat[1] > 2.0 and 0.5 < lat[1] / lat[0] < 2.0  # the third commit's own (slower) code ran
    assert not any((repo / ".git" / "worktrees").iterdir()) if (repo / ".git" / "worktrees").exists() else True
    assert os.path.isdir(Path(filed[0].path))
