# Two entry points: `make demo` and `make test`. Both bootstrap .venv on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint perf clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch/torchvision pinned to the pair whose wheels match (torch 2.13 CPU + PyPI torchvision fails to import)
	$(BIN)/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/python -m pip install -q -e ".[test,slurm,ray,loggers]"
	touch $(STAMP)

# The offline world: bundled pre-trained tiny CLIP, nothing downloaded; two single-threaded workers on 2 cores.
demo: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/clbench run --methods zeroshot,finetune,zscl,gift --benchmark shapes_mtil_order1 --jobs 2

test: $(STAMP)
	$(BIN)/ruff check clbench methods benchmarks tests perf
	$(BIN)/python -m pytest -q -x --timeout=900 -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check clbench methods benchmarks tests perf

perf: $(STAMP)
	for script in perf/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
