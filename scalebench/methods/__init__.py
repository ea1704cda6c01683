"""Reference generators, one module per method family."""
