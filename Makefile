# Every target bootstraps .venv by itself: a fresh clone needs only `make demo` or `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
OUT     ?= demo-out

.PHONY: venv test demo lint bench clean

# torch first, pinned: the CPU wheel (plain `torch` can pull a multi-GB CUDA build). Then the study
# and dev extras (docs/install.md); the editable install also builds the optional C entropy kernel
# (setup.py) in place where a compiler is found. timm goes in with --no-deps: its torchvision
# dependency would pull a CUDA torch, and the tests stand in for torchvision; its small deps are
# installed by hand.
$(STAMP): pyproject.toml setup.py attndilute/instrument/_entropy_kernel.c
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[study,dev]"
	$(BIN)/python -m pip install -q --no-deps timm==1.0.31
	$(BIN)/python -m pip install -q huggingface_hub pyyaml safetensors
	touch $(STAMP)

venv: $(STAMP)

# Two workers of one thread each, an idle one taking tests from the busy one: 332-412 s on a 2-core
# machine, where one two-thread process took 730-784 s before the suite was trimmed
# (docs/performance.md).
test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist worksteal

demo: $(STAMP)
	$(BIN)/attndilute demo --out $(OUT)

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[bench]"
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache attndilute/instrument/_entropy_kernel.*.so
