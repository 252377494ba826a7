# Two entry points, each self-contained on a fresh machine: `make demo`, `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The runtime alone (numpy, OpenCV, ONNX Runtime, huggingface_hub): no torch, as on an edge box.
$(VENV)/.installed-base: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

# Everything the tests need: training (torch, timm, opacus), export (onnx), pytest.
$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed-base

# Pose on 3 s of real footage with the embedded default model (a DP-SGD checkpoint, epsilon 7.98).
demo: $(VENV)/.installed-base
	$(VENV)/bin/dp-pose infer tests/data/vtest-clip/vtest-clip.avi

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q

clean:
	rm -rf runs .pytest_cache
