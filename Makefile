# Two commands on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BASE   := $(VENV)/.installed-base

.PHONY: install demo test bench gopeer clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m compileall -q p2p oracle bench >/dev/null
	touch $(STAMP) $(BASE)

install: $(STAMP)

# The demo needs the library only: no test or fuzzing tools.
$(BASE): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -m compileall -q p2p oracle >/dev/null
	touch $(BASE)

demo: $(BASE)
	$(BIN)/python -m oracle demo

test: install
	$(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

# Byte-compile first, as a regular (non-editable) install does: this machine sets
# PYTHONDONTWRITEBYTECODE, so start-up would otherwise include compiling our sources.
bench: install
	$(BIN)/python -m compileall -q p2p oracle bench >/dev/null
	$(BIN)/python -m bench $(BENCH_ARGS)

gopeer: install
	$(BIN)/python -c "from tests.interop.gopeer import build_gopeer; print(build_gopeer())"

clean:
	rm -rf $(VENV) .cache .pytest_cache .hypothesis
