# The README's commands. `make demo` and `make test` each set up .venv from scratch when needed:
# torch 2.13.0 first (the CPU build; any other torch requirement would pull CUDA packages), then every package
# under packages/ editable with its test dependencies.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := packages/common $(filter-out packages/common,$(wildcard packages/*))
STAMP := $(VENV)/.installed
OUT ?= runs
# recipe worker processes (one torch thread each; the results do not depend on their number)
JOBS ?= $(shell nproc 2>/dev/null || echo 1)

.PHONY: install demo test lint bench clean

$(STAMP): $(wildcard packages/*/pyproject.toml) Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet $(foreach p,$(PACKAGES),-e "$(p)[test]")
	# cross-checks only; --no-deps because torchattacks would pull torchvision, and shadow-ssml asks for a bare
	# torch (a CUDA build) while it only needs the torch and NumPy already here; torchcam (Grad-CAM++ and Smooth
	# Grad-CAM++) and prdc (generative precision/recall) are cross-checks too, their requirements already here
	$(BIN)/python -m pip install --quiet --no-deps torchattacks==3.5.1 shadow-ssml==1.0.3 torchcam==0.5.0 prdc==0.2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/robustlab genomics reproduce koo2019 --profile quick --jobs $(JOBS) --out $(OUT)/koo2019

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check packages tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_pgd.py --threads 1
	$(BIN)/python benchmarks/bench_integrated_gradients.py --threads 1
	$(BIN)/python benchmarks/bench_engine.py --threads 1
	$(BIN)/python benchmarks/bench_activation_patterns.py --threads 1
	$(BIN)/python benchmarks/bench_ssl_vs_shadow.py --threads 1
	$(BIN)/python benchmarks/mnist_robust_training.py --threads 1
	$(BIN)/python benchmarks/bench_genomics_data.py
	$(BIN)/python benchmarks/bench_genomics_saliency.py
	$(BIN)/python benchmarks/bench_ecg_beats.py --threads 1
	$(BIN)/python benchmarks/bench_ecg_features.py --threads 1
	$(BIN)/python benchmarks/bench_seismic_data.py --threads 1
	$(BIN)/python benchmarks/bench_seismic_spectrogram.py --threads 1

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
