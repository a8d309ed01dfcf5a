# Two commands matter: `make demo` (the main job) and `make test` (the whole suite). Both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
REQS := requirements.txt requirements-dev.txt shared/requirements.txt constraints.txt

.PHONY: install test lint format demo mock bench-mock clean

install: $(STAMP)

# Re-installs only when a requirements file changed, so repeated runs cost a file check.
$(STAMP): $(REQS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/python -m pytest

demo: install
	PYTHONPATH=shared:. $(BIN)/python -m mock_server --admin

mock: install
	PYTHONPATH=shared:. $(BIN)/python -m mock_server --admin

bench-mock: install
	PYTHONPATH=shared:. $(BIN)/python -m bench.mock_load

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
