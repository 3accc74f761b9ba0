# The two set-up commands of the README. Both create .venv on first use and install o2l into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.o2l-installed
DEMO_DIR ?= demo
# e.g. make demo DEMO_FLAGS='--precision float32': what a CPU without native bf16 runs
DEMO_FLAGS ?=

.PHONY: demo demo-full test test-slow bench reproduce clean

$(INSTALLED): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(INSTALLED)

demo: $(INSTALLED)
	@# synth -> build-records -> teacher -> pseudo-labels + student -> held-out phantoms -> predict -> evaluate
	@# (o2l_tf/demo.py; the same library calls as the separate commands, listed in the README)
	$(BIN)/o2l demo --out $(DEMO_DIR) $(DEMO_FLAGS)

demo-full: $(INSTALLED)
	@# the same pipeline with the converged recipe (preset converge, 80 phantoms): 48 min on the AVX512-BF16 2-core machine (docs/results/demo-full/)
	$(BIN)/o2l demo --out $(DEMO_DIR)-full --scale full $(DEMO_FLAGS)

test: $(INSTALLED)
	@# the default suite: everything but the end-to-end runs marked slow (about 7 minutes on 2 cores)
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(INSTALLED)
	@# the end-to-end runs (o2l reproduce --scale small, o2l demo, notebooks, clusters): about 10 more minutes; CI runs both
	$(BIN)/python -m pytest -q -m slow

bench: $(INSTALLED)
	@# speed and memory against this machine's own limits -> benchmarks/results/latest.json and latest.md
	@# (the PyTorch comparison runs when torch is installed: $(BIN)/pip install -e '.[bench]'; else it is skipped)
	@# the PyTorch backbone is the o2l U-Net (benchmarks/test_torch_unet.py: needs torch, so it lives here, not in make test)
	if $(BIN)/python -c "import torch" 2>/dev/null; then $(BIN)/python -m pytest -q benchmarks/test_torch_unet.py; \
	else echo "benchmarks/test_torch_unet.py not run: torch is not installed (.venv/bin/pip install -e '.[bench]')"; fi
	$(BIN)/python benchmarks/run.py

reproduce: $(INSTALLED)
	@# the paper's four studies on phantoms at medium scale, one seed (about 50 minutes on 2 CPU cores with bf16; resumable)
	$(BIN)/o2l reproduce --study all --scale medium --out reproduce-medium

clean:
	rm -rf $(VENV) $(DEMO_DIR) $(DEMO_DIR)-full reproduce-medium reproduce-converge .pytest_cache *.egg-info
