# Two entry points, each self-contained on a fresh machine: `make demo`, `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Train the small demo recipe once (about 3 minutes on 2 cores), then print its PCKh table.
demo: $(STAMP)
	test -f runs/demo/config.json || $(VENV)/bin/dp-pose train --recipe training/recipes/demo.yaml --out runs/demo
	$(VENV)/bin/dp-pose eval runs/demo --data synthpose:private-test

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf runs .pytest_cache
