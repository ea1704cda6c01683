#!/bin/bash
# `make run` as a new user meets it: a fresh clone of this repository's HEAD, `make install`, then
# `make run` with cold caches (an empty $SCALEBENCH_CACHE), each timed; the figures go to
# results/fresh-clone-cpu/times-<commit>.json (what the README quotes). Run alone, under the CPU lock:
#
#     flock /tmp/scalebench-cpu.lock bash benchmarks/fresh_clone_run.sh [WORKDIR]
set -u
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/scalebench-fresh}
rm -rf "$work" && mkdir -p "$work"
git clone -q "$repo" "$work/clone"
cd "$work/clone"
export SCALEBENCH_CACHE="$work/cache"
s=$(date +%s); make install > "$work/install.log" 2>&1; install_rc=$?; install_s=$(( $(date +%s) - s ))
s=$(date +%s); make run > "$work/run.log" 2>&1; run_rc=$?; run_s=$(( $(date +%s) - s ))
python3 - "$work" "$install_rc" "$install_s" "$run_rc" "$run_s" "$repo" <<'PY'
import json, re, subprocess, sys, datetime, pathlib
work, install_rc, install_s, run_rc, run_s, repo = sys.argv[1:]
log = pathlib.Path(work, "run.log").read_text(encoding="utf-8", errors="replace")
m = re.search(r"(\d+) points: (\d+) already done, (\d+) run, (\d+) failed; ([\d.]+)s", log)
clone = pathlib.Path(work, "clone")
manifest = json.loads((clone / "results" / "quick" / "manifest.json").read_text())
out = {"date": datetime.date.today().isoformat(),
       "commit": subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip(),
       "machine": manifest.get("provenance", {}).get("device_name"), "threads": manifest.get("threads"),
       "install": {"rc": int(install_rc), "wall_s": int(install_s), "command": "make install"},
       "run": {"rc": int(run_rc), "wall_s": int(run_s), "command": "make run (sweep + report)"},
       "sweep": {"points": int(m[1]), "ran": int(m[3]), "failed": int(m[4]), "wall_s": float(m[5]),
                 "command": "scalebench run quick --out results/quick"} if m else None,
       "cache": "empty SCALEBENCH_CACHE (cold)"}
dest = pathlib.Path(repo, "results", "fresh-clone-cpu")
dest.mkdir(parents=True, exist_ok=True)
(dest / f"times-{out['commit']}.json").write_text(json.dumps(out, indent=2) + "\n")
print(json.dumps(out, indent=2))
PY
