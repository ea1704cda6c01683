"""Shared network building blocks for the reference methods."""
