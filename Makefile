# scalebench — set-up, run, test. Every target installs what it needs from this repo's files.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SB := $(VENV)/bin/scalebench
SPEC ?= benchmarks/quick.toml
OUT ?= results/quick

.PHONY: install run test test-slow lint train report clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

run: install
	$(SB) run $(SPEC) --out $(OUT)
	$(SB) report $(OUT) --out $(OUT)/report

report: install
	$(SB) report $(OUT) --out $(OUT)/report

test: install
	$(PY) -m pytest -q

test-slow: install  # exit code 5 = no slow tests collected, which is fine
	$(PY) -m pytest -q -m slow || [ $$? -eq 5 ]

lint: install
	$(VENV)/bin/ruff check scalebench tests benchmarks

train: install
	$(SB) train features
	$(SB) train gpt
	$(SB) train diffusion

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
