# The two set-up commands of the README. Both create .venv on first use and install o2l into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.o2l-installed
DEMO_DIR ?= demo

.PHONY: demo test clean

$(INSTALLED): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/o2l synth $(DEMO_DIR)/phantoms --cases 10 --size 192 --slices 48:64 --seed 0 --preview --overwrite
	@# Split seed 2 puts both contrast phases among the 3 strong cases (seed 0 would give portal-venous only).
	$(BIN)/o2l build-records --data $(DEMO_DIR)/phantoms --out $(DEMO_DIR)/records --split 30:60:10 --seed 2 --overwrite
	$(BIN)/o2l inspect-records $(DEMO_DIR)/records --png $(DEMO_DIR)/records.png
	$(BIN)/o2l train --role teacher --records $(DEMO_DIR)/records --model-dir $(DEMO_DIR)/runs/teacher --preset demo --overwrite --quiet
	$(BIN)/o2l train --role student --records $(DEMO_DIR)/records --teacher $(DEMO_DIR)/runs/teacher --model-dir $(DEMO_DIR)/runs/student --preset demo --overwrite --quiet
	$(BIN)/o2l synth $(DEMO_DIR)/test --cases 3 --size 192 --slices 48:64 --seed 1 --overwrite --quiet
	$(BIN)/o2l predict --model $(DEMO_DIR)/runs/student $(DEMO_DIR)/test -o $(DEMO_DIR)/predictions --preview --quiet
	$(BIN)/o2l evaluate --pred $(DEMO_DIR)/predictions --ref $(DEMO_DIR)/test --csv $(DEMO_DIR)/evaluation.csv
	@echo "Demo outputs in $(DEMO_DIR)/: phantoms/preview.png, records.png, runs/ (tensorboard --logdir $(DEMO_DIR)/runs),"
	@echo "predictions/ (held-out phantoms test/, with PNG previews) and evaluation.csv"

test: $(INSTALLED)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache *.egg-info
