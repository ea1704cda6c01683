"""Sweep specs, grid expansion, the runner and its executors."""
