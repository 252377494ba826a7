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

# Pose on 3 s of real footage with the embedded default model (a DP-SGD checkpoint, epsilon 1.0).
demo: $(VENV)/.installed-base
	$(VENV)/bin/dp-pose infer tests/data/vtest-clip/vtest-clip.avi

# Debian's Chromium for the app's browser test (tests/test_app_browser.py drives it with Playwright, whose own
# browser download does not work on these machines). Installed only when missing, by apt as root (CI); elsewhere
# make says how, and the browser test fails saying so too (DP_POSE_SKIP_BROWSER_TEST=1 skips it on purpose).
CHROMIUM := /usr/lib/chromium/chromium

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium for the browser test (apt-get, about a minute)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q chromium >/dev/null 2>&1 \
		|| { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	else \
		echo "make: $(CHROMIUM) is missing: sudo apt-get install -y chromium (the browser test needs it)" >&2; \
	fi

test: $(VENV)/.installed-dev | $(CHROMIUM)
	$(PY) -m pytest -q

clean:
	rm -rf runs .pytest_cache
