# Every target sets up what it needs: a fresh clone only needs python3 >= 3.11 and make.
# The dev extra pulls the sandbox extra (starlette, uvicorn) that demo, test, chaos and bench need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck unit chaos bench clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/rotator demo

lint: $(STAMP)
	$(BIN)/ruff check rotator tests tools celeryconfig.py
	$(BIN)/ruff format --check rotator tests tools celeryconfig.py

typecheck: $(STAMP)
	$(BIN)/mypy rotator tools

# The report's browser test renders the HTML in headless Chromium (Debian's package; root on
# the machines this project runs on). Installed when missing, so a fresh machine needs nothing.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	    >/dev/null 2>&1; } || echo "note: chromium is not installed; the report's browser test needs it"

test: lint typecheck browser
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest -m "not integration and not chaos"

chaos: $(STAMP)
	$(BIN)/python -m tools.chaos $(CHAOS_ARGS)

bench: $(STAMP)
	$(BIN)/python -m tools.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .rotator .pytest_cache .mypy_cache .ruff_cache
