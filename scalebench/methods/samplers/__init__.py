"""Sampling loops shared by families: plain functions over a network callable (k-diffusion style)."""
