# The README's two commands: `make demo` and `make test`. Both create the venv, install what they
# need and fetch the Kafka jars on a fresh machine; later runs reuse all three.
VENV ?= .venv
PY := $(VENV)/bin/python
PW := $(VENV)/bin/perfwatch
export PERFWATCH_CACHE ?= $(CURDIR)/.cache
PYTEST_ARGS ?=

.PHONY: install jars lint test test-fast demo bench chaos clean

# torch from PyPI brings its CUDA wheels: about 7.5 GiB installed, plus the downloads while pip runs.
# Say so up front rather than leave pip's "No space left on device" halfway through.
$(VENV)/.installed: pyproject.toml setup.py
	@free=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); \
	if [ "$$free" -lt 12 ]; then \
	  echo "perfwatch: $$free GiB free here; the full install (torch with its CUDA wheels) needs about 12 GiB" >&2; \
	fi
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

jars: install
	$(PW) broker fetch

lint: install
	$(VENV)/bin/ruff check .
	$(PY) -m perfwatch.tooling.typecheck .cache/typecheck >/dev/null
	MYPYPATH=.cache/typecheck $(VENV)/bin/mypy -p perfwatch

test: jars lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: jars lint
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

demo: jars
	$(PW) demo

bench: jars
	$(PW) bench

chaos: jars
	$(PW) chaos

clean:
	rm -rf artifacts .cache/broker .pytest_cache .mypy_cache .ruff_cache
