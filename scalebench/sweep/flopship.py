"""Write the FLOP counts shipped as package data (`zoo/flops.json`): `python -m scalebench.sweep.flopship --ship`.

Apart from `flopcache.py` because it drives the measuring code (`measure.flops`), which reads the cache:
one module each way keeps the import graph acyclic.
"""

from __future__ import annotations

import json
from typing import Any

from scalebench.sweep import flopcache


def ship() -> int:
    """Count (or read from the cache) every built-in CPU point's FLOPs of the shipped specs into flopcache.SHIPPED."""
    from scalebench.atomic import atomic_write_text
    from scalebench.specs import shipped
    from scalebench.sweep.measure import PROBE_N, flops, load
    from scalebench.sweep.plan import expand
    from scalebench.sweep.spec import load_spec

    counts: dict[str, Any] = {}
    for name in shipped():
        for p in expand(load_spec(name)):
            if p.device != "cpu" or p.args or p.dataset:
                continue
            key = flopcache.flops_key(p, PROBE_N)
            if flopcache.digest(key) not in counts:
                counts[flopcache.digest(key)] = {"key": key, "flops_per_sample": flops(load(p), p)}
    atomic_write_text(flopcache.SHIPPED, json.dumps({"format": flopcache.FORMAT, "counts": dict(sorted(counts.items()))},
                                          indent=1, sort_keys=True) + "\n")
    flopcache._shipped.cache_clear()
    return len(counts)


if __name__ == "__main__":  # python -m scalebench.sweep.flopship --ship
    import argparse

    ap = argparse.ArgumentParser(description="write the shipped FLOP counts (scalebench/zoo/flops.json)")
    ap.add_argument("--ship", action="store_true", required=True)
    ap.parse_args()
    print(f"wrote {ship()} counts to {flopcache.SHIPPED}")
