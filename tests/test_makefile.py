"""`make browser`, which `make test` depends on: installs Debian's chromium for the browser test when missing.

The install itself is not run here (it changes the system); the branches are: a no-op when the
browser exists, the one-line message and the apt-get command otherwise, and (as root, with a
failing apt stand-in) the one line saying what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALLING = "installing Debian's chromium for the report's browser test"


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make")
    if make is None:
        pytest.fail("`make` is not installed; the README's commands need it", pytrace=False)
    env = {k: v for k, v in os.environ.items() if k not in ("SCALEBENCH_CHROMIUM", "MAKEFLAGS", "MFLAGS")}
    return subprocess.run([make, "-s", "-C", str(ROOT), *args], capture_output=True, text=True, env=env, timeout=60)


def test_browser_target_is_a_no_op_when_the_browser_exists() -> None:
    res = _make("browser", f"SCALEBENCH_CHROMIUM={sys.executable}")  # any executable stands in for chromium
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and res.stderr == ""


def test_browser_target_installs_debians_chromium_when_missing() -> None:
    res = _make("-n", "browser", "SCALEBENCH_CHROMIUM=/nonexistent/chromium")
    assert res.returncode == 0, res.stderr
    script = res.stdout
    assert '[ -x "/nonexistent/chromium" ]' in script
    assert INSTALLING in script and "apt-get -qq -o DPkg::Lock::Timeout=300 install -y chromium" in script
    assert "sudo DEBIAN_FRONTEND=noninteractive apt-get" in script  # not root: through sudo
    assert "no root or sudo to install it: run 'apt-get install -y chromium' as root" in script


def test_make_test_runs_the_browser_target_before_pytest() -> None:
    res = _make("-n", "test", "SCALEBENCH_CHROMIUM=/nonexistent/chromium")
    assert res.returncode == 0, res.stderr
    assert INSTALLING in res.stdout and "-m pytest -q" in res.stdout
    assert res.stdout.index(INSTALLING) < res.stdout.index("-m pytest -q")


def test_without_a_way_to_install_it_says_what_to_install_in_one_line(tmp_path) -> None:
    """Runs the branch this user takes: root with a failing apt stand-in, or a user without sudo."""
    if os.geteuid() == 0:
        res = _make("browser", "SCALEBENCH_CHROMIUM=/nonexistent/chromium", "APT=false")
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines() == [
            f"{INSTALLING} (apt-get install chromium)",
            "could not install chromium; run 'apt-get install -y chromium' (the browser tests fail until then)"]
    else:
        bin_dir = tmp_path / "bin"  # a PATH with `id` but no sudo
        bin_dir.mkdir()
        (bin_dir / "id").symlink_to(shutil.which("id"))
        res = _make("browser", "SCALEBENCH_CHROMIUM=/nonexistent/chromium", f"PATH={bin_dir}")
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines() == [
            "chromium missing at /nonexistent/chromium and no root or sudo to install it: run 'apt-get install -y "
            "chromium' as root (the browser tests fail until then)"]


def test_make_train_retrains_the_zoo_in_the_order_the_index_implies() -> None:
    """`make train` keeps no list of its own: it runs `scalebench train --all`, whose order
    (tests/test_train_all.py) covers every checkpoint and replicate of the zoo index."""
    res = _make("-n", "train", "SB=scalebench")  # -n: the install step is printed, not run
    assert res.returncode == 0, res.stderr
    train_lines = [ln for ln in res.stdout.splitlines() if ln.startswith("scalebench ")]
    assert train_lines == ["scalebench train --all"]
