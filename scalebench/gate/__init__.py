"""The speed gate: compare two result sets point by point (`compare_runs`) and the interleaved A/B
run of a git revision against the working tree (`scalebench.gate.ab`).

thresholds (parse '10%', 'gpt*=5%') → pooling (a side's runs per point) → matching (pair the
points) → stats (the latency test, its attainable p, the correction) → decide (one point) →
compare (all points: `compare_runs`) → report (rows, exit code) → render (Markdown, terminal).
"""

from scalebench.gate.compare import compare_runs
from scalebench.gate.decide import DEFAULT_ALPHA, Decision, decide_latency, latency_decision, metric_decision
from scalebench.gate.report import CompareReport, Row
from scalebench.gate.stats import adjust_p_values, latency_test, min_p_value, paired_t
from scalebench.gate.thresholds import CompareError, Thresholds, parse_fraction

__all__ = ["DEFAULT_ALPHA", "CompareError", "CompareReport", "Decision", "Row", "Thresholds", "adjust_p_values",
           "compare_runs", "decide_latency", "latency_decision", "latency_test", "metric_decision", "min_p_value",
           "paired_t", "parse_fraction"]
