"""The docs' measured tables are generated from the committed records (`make docs`,
`python -m scalebench.docsgen`), and cannot drift from them: every generated block of the repository's
docs must equal what the records give now, and generation never touches text outside the markers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from scalebench.docsgen import generate, main
from scalebench.docsgen.markers import find_blocks, outside
from scalebench.docsgen.numbers import pm, pm_of, sig
from scalebench.errors import UsageError
from scalebench.record import Cost, Floor, Record

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def repo_docs() -> list:
    """The repository's docs as generated from its committed records (computed once: ≈ 3 s)."""
    return generate(ROOT)


def test_every_generated_block_matches_the_committed_records(repo_docs: list) -> None:
    stale = [f"{r.path}: block {name!r}" for r in repo_docs for name in r.changed]
    assert not stale, ("generated blocks differ from what the committed records give (run `make docs`): "
                       + "; ".join(stale))


def test_generation_leaves_the_text_outside_the_markers_byte_for_byte(repo_docs: list) -> None:
    results = repo_docs
    assert {str(r.path) for r in results} >= {"docs/metrics.md", "docs/scalability-table.md",
                                               "docs/methods/gpt.md", "docs/methods/likelihoods.md"}
    for r in results:
        assert outside(r.new, find_blocks(r.new, r.path)) == outside(r.old, find_blocks(r.old, r.path)), r.path


def test_no_method_doc_lacks_its_generated_tables() -> None:
    """Each family's doc shows the full-spec block (a table, or the line saying no record exists)."""
    for doc in sorted((ROOT / "docs" / "methods").glob("*.md")):
        if doc.stem == "likelihoods":
            continue
        names = {b.name for b in find_blocks(doc.read_text(encoding="utf-8"), doc)}
        assert f"methods/{doc.stem}:full" in names, doc


DOC = """# A doc\r\nprose with trailing spaces   \n<!-- generated:methods/gpt:full -->\nhand-copied 5.90\n\
<!-- /generated:methods/gpt:full -->\n\ttabbed line, no final newline \u2212 kept\n\
<!-- generated:metrics:floors -->\n<!-- /generated:metrics:floors -->\nend"""


def _doc(root: Path, text: str = DOC) -> Path:
    (root / "docs").mkdir(parents=True, exist_ok=True)
    path = root / "docs" / "a.md"
    path.write_bytes(text.encode("utf-8"))
    return path


def test_write_then_check_on_a_doc_without_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _doc(tmp_path)
    assert main(["--check", "--root", str(tmp_path)]) == 1
    assert "docs/a.md: generated block 'methods/gpt:full' differs" in capsys.readouterr().out
    assert main(["--root", str(tmp_path)]) == 0
    new = path.read_bytes().decode("utf-8")
    assert outside(new, find_blocks(new)) == outside(DOC, find_blocks(DOC))  # \r\n, tabs, no final newline
    assert "hand-copied 5.90" not in new
    assert "No committed full-spec record of this family yet" in new
    assert "No committed record carries a data floor." in new
    assert main(["--check", "--root", str(tmp_path)]) == 0


@pytest.mark.parametrize(("text", "words"), [
    ("<!-- generated:metrics:floors -->\n", "docs/a.md:1: block 'metrics:floors' is never closed"),
    ("x\n<!-- /generated:metrics:floors -->\n", "docs/a.md:2: closing marker of 'metrics:floors' without"),
    ("<!-- generated:bogus -->\n<!-- /generated:bogus -->\n", "unknown generated block 'bogus'"),
    ("<!-- generated:methods/gpt:full:colour=red -->\n<!-- /generated:methods/gpt:full:colour=red -->\n",
     "is neither samplers=a,b nor paired=a,b"),
    ("<!-- generated:metrics:floors -->\n<!-- /generated:metrics:floors -->\n" * 2, "appears twice"),
])
def test_a_bad_marker_is_one_line_naming_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       text: str, words: str) -> None:
    _doc(tmp_path, text)
    assert main(["--check", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_a_marker_quoted_in_prose_is_not_a_block() -> None:
    assert find_blocks("write `<!-- generated:NAME -->` … `<!-- /generated:NAME -->` around it\n") == []
    with pytest.raises(UsageError):
        find_blocks("<!-- generated:a -->\n<!-- generated:b -->\n")


def _record(family: str, S: int, seed: int, fid: float, run: str) -> dict:
    r = Record(point_id=f"{family}-{S}-{seed}", status="ok", generator=family, sampler="ancestral", S=S, K=1,
               seed=seed, n=100, batch_size=50, device="cpu", threads=1, category="sequence", family=family,
               dataset="digits", metrics={"fid": fid, "precision": 0.5 + seed / 100},
               floors={"fid": Floor(2.5, 0.75, 100)}, cost=Cost(nfe=S, flops=1e6 * S, latency_s=1e-3 * S),
               provenance={"git_commit": "a" * 40}, run=run)
    return r.to_json()


def _run(root: Path, name: str, fids: dict[int, list[float]], command: str | None = None) -> None:
    d = root / "results" / name
    d.mkdir(parents=True)
    lines = [json.dumps(_record("gpt", S, seed, f, name)) for S, vals in fids.items() for seed, f in enumerate(vals)]
    (d / "points.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    manifest = {"run": name, "spec_source": "scalebench/specs/full.toml", "spec": {"name": "full"}}
    if command:
        manifest["command"] = command
    (d / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_a_table_is_the_records_mean_and_sd_with_its_provenance(tmp_path: Path) -> None:
    fids = {1: [140.0, 141.5, 139.2], 4: [20.25, 22.0, 19.5]}
    _run(tmp_path, "full-x", fids, command="scalebench run full --out results/full-x")
    _doc(tmp_path, "<!-- generated:methods/gpt:full -->\n<!-- /generated:methods/gpt:full -->\n"
                   "<!-- generated:metrics:floors -->\n<!-- /generated:metrics:floors -->\n")
    (res,) = generate(tmp_path)
    row = next(line for line in res.new.splitlines() if line.startswith("| 4 | 1 |"))
    vals = np.array(fids[4])
    assert f"| 3 | 4 | {pm_of(vals.mean(), vals.std(ddof=1))} |" in row  # n, NFE, FID
    assert pm_of(vals.mean(), vals.std(ddof=1)) == "20.6 ± 1.3"
    assert row.endswith("| 4.00 M | 4.00 |")  # FLOPs/sample, ms/sample
    assert "`results/full-x`: spec `scalebench/specs/full.toml`" in res.new
    assert "command: `scalebench run full --out results/full-x`" in res.new and "`aaaaaaa`" in res.new
    assert "S ▲ improves" in res.new  # the run's verdict, through the real table code
    assert "| FID | 100 | 2.50 ± 0.75 | — | — | `full-x`: 6 |" in res.new


def test_only_runs_git_would_commit_reach_the_docs(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("/results/quick/\n", encoding="utf-8")
    _run(tmp_path, "full-x", {1: [140.0, 141.0], 4: [20.0, 21.0]})
    _run(tmp_path, "quick", {1: [1.0, 1.0]})
    _doc(tmp_path, "<!-- generated:metrics:floors -->\n<!-- /generated:metrics:floors -->\n")
    (res,) = generate(tmp_path)
    assert "`full-x`: 4" in res.new and "`quick`" not in res.new


def test_numbers_keep_a_few_significant_digits() -> None:
    assert [sig(v) for v in (141.23, 5.901, 0.01734, 1127.4, -0.0372, 1.7e-5, 0.0)] == [
        "141", "5.90", "0.0173", "1127", "−0.0372", "1.70e-05", "0"]
    assert pm_of(0.82593, 0.29396) == "0.83 ± 0.29"
    assert pm_of(-0.001, 0.5) == "0.00 ± 0.50"  # no "−0.00"
    assert pm([5.0]) == "5.00" and pm([2.0, 2.0]) == "2.000 ± 0"
