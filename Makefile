# Two commands matter: `make demo` (the main job) and `make test` (the whole suite). Both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
REQS := requirements.txt requirements-dev.txt shared/requirements.txt constraints.txt pyproject.toml

.PHONY: install test lint format asl dist demo stack mock bench bench-trickle bench-faults bench-mock bench-costs simulate build checkov asl-engine clean

install: $(STAMP)

# Re-installs only when a requirements file changed, so repeated runs cost a file check.
$(STAMP): $(REQS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@# The project's packages (picwish and picwish_pipeline from shared/, mock_server, offline, bench) importable without PYTHONPATH.
	@$(BIN)/python -c "import site, pathlib; pathlib.Path(site.getsitepackages()[0], 'picwish-pipeline.pth').write_text('$(CURDIR)/shared\n$(CURDIR)\n')"
	@# The wheel's own commands (picwish-ops, picwish-mock), from pyproject.toml, over this checkout's code.
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The wheel and sdist users install: the `picwish` client, and with [mock] the mock, `picwish-mock` and the
# pytest plugin (pyproject.toml). Built from the pinned build tools, without fetching anything.
dist: install
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .

# statemachine/pipeline.asl.json is generated from statemachine/definition.py (a test checks they agree).
asl: install
	$(BIN)/python -m statemachine.definition
	$(BIN)/python -m statemachine.backfill

# checkov audits template.yaml (each skip justified in the template) before the tests run.
test: lint checkov asl-engine
	$(BIN)/python -m pytest

# The second ASL engine the state machine is compared on (tests/functional/test_second_engine.py), from npm's
# registry at the lockfile's versions; again only when the lockfile changed.
ENGINE := tests/support/asl_engine
asl-engine: $(ENGINE)/node_modules/.installed

$(ENGINE)/node_modules/.installed: $(ENGINE)/package-lock.json
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null || \
		{ echo "make test needs Node >= 20 (the second ASL engine runs on it): install Node 20 or later" >&2; exit 1; }
	@cd $(ENGINE) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

demo: install
	$(BIN)/python -m offline demo

stack: install
	$(BIN)/python -m offline stack

mock: install
	$(BIN)/python -m mock_server --admin

bench: install
	$(BIN)/python -m bench --scenario burst --runs 3 --check

bench-trickle: install
	$(BIN)/python -m bench --scenario trickle --runs 3 --check

# The poll timing replayed on a virtual clock (bench/simulate.py): 800 trickle tasks in about three minutes, to
# judge a change before the real benchmark measures it.
simulate: install
	$(BIN)/python -m bench.simulate --scenario trickle --n 160 --seeds 11-15

bench-faults: install
	$(BIN)/python -m bench --faults --check

bench-mock: install
	$(BIN)/python -m bench.mock_load

bench-costs: install
	$(BIN)/python -m bench.per_operation

# A tool in a virtualenv of its own (its pins would fight the project's): $(1) the virtualenv, $(2) its requirements.
define tool_venv
	@test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	@$(1)/bin/python -m pip install --quiet --disable-pip-version-check -r $(2)
	@touch $@
endef

# sam build needs the Lambda runtime's Python (3.12) on PATH; pyenv provides it beside 3.11 on these machines.
DEPLOY_BIN := .venv-deploy/bin
$(DEPLOY_BIN)/sam: requirements-deploy.txt
	$(call tool_venv,.venv-deploy,requirements-deploy.txt)

build: $(DEPLOY_BIN)/sam
	PYENV_VERSION=$${PYENV_VERSION:-3.11.7:3.12.1:3.13.0} SAM_CLI_TELEMETRY=0 $(DEPLOY_BIN)/sam build

# checkov alone in its own virtualenv: the test command needs it, not the SAM CLI.
AUDIT_BIN := .venv-audit/bin
$(AUDIT_BIN)/checkov: requirements-audit.txt
	$(call tool_venv,.venv-audit,requirements-audit.txt)

checkov: $(AUDIT_BIN)/checkov
	$(AUDIT_BIN)/checkov -f template.yaml --skip-download --compact --quiet

clean:
	rm -rf $(VENV) .venv-deploy .venv-audit .aws-sam .pytest_cache .ruff_cache .hypothesis
