# Everyday verbs. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STACK ?= local

.PHONY: test install lint typecheck pytest up preview destroy docs

test: install lint typecheck pytest

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c requirements.lock
	touch $@

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

pytest: install
	@$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

up:
	scripts/pulumi.sh up $(STACK)

preview:
	scripts/pulumi.sh preview $(STACK)

destroy:
	scripts/pulumi.sh destroy $(STACK)

docs: install
	$(PY) -m components.config_schema --pulumi-yaml
	$(PY) -m components.config_schema
