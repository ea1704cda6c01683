"""Latency thresholds of the gate: '10%' or 'gpt*=5%' from the command line, and the gate's error type."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

from scalebench.errors import ScalebenchError

DEFAULT_THRESHOLD = 0.10


class CompareError(ScalebenchError, ValueError):
    """Bad input to a comparison, phrased as one line naming the value and the fix."""


_FRACTION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%?)\s*$")


def parse_fraction(text: str, where: str = "--threshold") -> float:
    """'10%' or '0.1' → 0.1. A bare number ≥ 1 is refused as ambiguous ('10' → write '10%')."""
    m = _FRACTION.match(text)
    if not m:
        raise CompareError(f"{where} {text!r} is not a percentage; write e.g. '10%' or '0.1', "
                           "or 'GLOB=PCT' such as 'gpt*=5%' for one generator")
    value, pct = float(m.group(1)), m.group(2)
    if pct:
        value /= 100
    elif value >= 1:
        raise CompareError(f"{where} {text!r} is ambiguous; write '{m.group(1)}%' for a percentage "
                           "or a fraction below 1 (0.1 = 10%)")
    if value > 10:
        raise CompareError(f"{where} {text!r} is above 1000%; use a percentage such as '10%'")
    return value


@dataclass(frozen=True)
class Thresholds:
    """Latency ratio thresholds: a default and per-generator glob rules (the last match wins)."""

    default: float = DEFAULT_THRESHOLD
    rules: tuple[tuple[str, float], ...] = ()

    @classmethod
    def parse(cls, items: Iterable[str] | None, default: float = DEFAULT_THRESHOLD) -> Thresholds:
        """From CLI values: '15%' sets the default, 'gpt*=5%' adds a rule for matching generators."""
        rules: list[tuple[str, float]] = []
        for item in items or ():
            if "=" in item:
                pattern, _, value = item.partition("=")
                pattern = pattern.strip()
                if not pattern:
                    raise CompareError(f"--threshold {item!r} has an empty generator glob; "
                                       "write e.g. 'gpt*=5%' or a plain '15%' for the default")
                rules.append((pattern, parse_fraction(value, f"--threshold {pattern}=")))
            else:
                default = parse_fraction(item)
        return cls(default=default, rules=tuple(rules))

    def for_generator(self, name: str) -> float:
        for pattern, value in reversed(self.rules):
            if fnmatch.fnmatchcase(name, pattern):
                return value
        return self.default

    def describe(self) -> str:
        return ", ".join([pct(self.default)] + [f"{p}={pct(v)}" for p, v in self.rules])


def pct(v: float) -> str:
    return f"{v * 100:.4g}%"
