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
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/clbench run --methods zeroshot,finetune --benchmark smoke

test: $(STAMP)
	$(BIN)/ruff check clbench methods benchmarks tests perf
	$(BIN)/python -m pytest -q -x --timeout=900

lint: $(STAMP)
	$(BIN)/ruff check clbench methods benchmarks tests perf

perf: $(STAMP)
	$(BIN)/python perf/engine_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache
