# scalebench — set-up, run, test. Every target installs what it needs from this repo's files.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SB := $(VENV)/bin/scalebench
SPEC ?= quick
OUT ?= results/quick
# The browser the report's browser test drives (tests/test_report_browser.py: $SCALEBENCH_CHROMIUM, else this).
CHROMIUM := $(or $(SCALEBENCH_CHROMIUM),/usr/bin/chromium)
APT := DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300

.PHONY: install browser run test test-slow lint train report floors docs clean

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

# Debian's chromium for the report's browser test: a no-op when present; as root (or with sudo) it
# is installed; otherwise one line says what to install and the browser tests fail (never skip).
browser:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian's chromium for the report's browser test (apt-get install chromium)"; \
	  log=$$( ($(APT) update && $(APT) install -y chromium) 2>&1) || { echo "$$log" | tail -n 5 | grep -v '^$$'; \
	    echo "could not install chromium; run 'apt-get install -y chromium' (the browser tests fail until then)"; }; \
	elif command -v sudo >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the report's browser test (sudo apt-get install chromium)"; \
	  log=$$( (sudo $(APT) update && sudo $(APT) install -y chromium) 2>&1) || { echo "$$log" | tail -n 5 | grep -v '^$$'; \
	    echo "could not install chromium; run 'sudo apt-get install -y chromium' (the browser tests fail until then)"; }; \
	else \
	  echo "chromium missing at $(CHROMIUM) and no root or sudo to install it: run 'apt-get install -y chromium' as root (the browser tests fail until then)"; \
	fi

test: install browser
	$(PY) -m pytest -q

test-slow: install  # exit code 5 = no slow tests collected, which is fine
	$(PY) -m pytest -q -m slow || [ $$? -eq 5 ]

lint: install
	$(VENV)/bin/ruff check scalebench tests benchmarks

train: install  # one at a time, parents first (order from scalebench/zoo/index.json): each recipe uses the machine's cores
	$(SB) train --all

floors: install  # what ships as package data for a cold cache: the data floors (after a change to scalebench/metrics or
	# scalebench/data) and the FLOP counts of the shipped specs' points (after a change to a sampler or metrics/cost.py)
	$(PY) -m scalebench.metrics.floor --ship
	$(PY) -m scalebench.sweep.flopship --ship

docs: install  # the docs' measured tables (generated blocks) from the committed records under results/
	$(PY) -m scalebench.cli docs

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
