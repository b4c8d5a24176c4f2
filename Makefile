# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PIP_EXTRA ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup system-deps run test test-fast lint doctor bench lock clean

# The venv is rebuilt only when the lock or the package metadata change.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --no-deps $(PIP_EXTRA) -r requirements.lock
	$(BIN)/pip install -qq --no-deps --no-build-isolation -e .
	@touch $(STAMP)

setup: $(STAMP)

## System packages the stack and the tests use: redis-server (the live-events log and store on
## Redis). Installed only when missing, with sudo when not root and sudo exists.
system-deps:
	@command -v redis-server >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || ! command -v sudo >/dev/null || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq -o Dpkg::Use-Pty=0 redis-server >/dev/null; }

## Main job on the bundled ml-latest-small: train EASE, evaluate, print metrics and a top-10;
## then the two-stage ranker (published to outputs/artefacts), and the serving stack (Triton +
## Ray Serve) asked for every surface, for a sample user and a brand-new one, then stopped.
run: setup system-deps
	@echo "== 1/3 EASE on ml-latest-small"
	@$(BIN)/python train.py
	@echo "== 2/3 the two-stage ranker (published to outputs/artefacts)"
	@$(BIN)/python train.py experiment=two_tower_small trainer.progress=false
	@echo "== 3/3 the serving stack, every surface"
	@$(BIN)/python -m serve.demo serve.artefacts_root=outputs/artefacts

## The whole test suite (unit + integration with real Ray, Triton, wandb offline).
test: setup system-deps lint
	$(BIN)/python -m pytest -q --timeout=900

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not integration"

lint: setup
	$(BIN)/ruff check recsys serve scripts tests train.py

doctor: setup
	$(BIN)/python -m recsys.doctor

bench: setup
	$(BIN)/python scripts/bench_baselines.py

## Re-resolve requirements.in into requirements.lock (needs the package index).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q -r requirements.in && .lock-venv/bin/pip install -q --no-deps torchrec==1.8.0
	{ head -3 requirements.lock; .lock-venv/bin/pip freeze --all | grep -vE '^(-e|pip==)'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .lock-venv

clean:
	rm -rf $(VENV) outputs multirun wandb .pytest_cache
