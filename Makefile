# Everyday verbs. `make test` is what CI runs (.ci/run). Every Pulumi verb goes through
# `python -m deploy`, which checks the stack file, picks its backend and secrets provider,
# and never creates an eks stack by accident (deploy/cli.py).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STACK ?= local
DEPLOY := $(PY) -m deploy

.PHONY: test install lint typecheck pytest check up preview refresh destroy pulumi ui init \
	bootstrap unmount docs rollback upgrade-drill

test: install lint typecheck pytest

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c requirements.lock
	touch $@

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/actionlint

typecheck: install
	$(VENV)/bin/mypy

pytest: install
	@$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

check: install
	@$(DEPLOY) check $(STACK)

up preview refresh destroy: install
	@$(DEPLOY) $@ $(STACK) $(ARGS)

pulumi: install
	@$(DEPLOY) pulumi $(STACK) $(ARGS)

# Restore the newest pre-upgrade snapshot and pin the versions from before that upgrade; the
# same prompt as `up` (ARGS pass through). The drill rehearses upgrade -> failed canary ->
# rollback on a non-production stack and prints the timings.
rollback: install
	@$(DEPLOY) rollback $(STACK) $(ARGS)

upgrade-drill: install
	@$(DEPLOY) upgrade-drill $(STACK)

ui: install
	@$(DEPLOY) ui $(STACK)

init: install
	@$(DEPLOY) init $(STACK)

bootstrap: install
	@$(DEPLOY) bootstrap --region $(REGION) $(if $(BUCKET),--bucket $(BUCKET)) \
		$(if $(KEY_ALIAS),--key-alias $(KEY_ALIAS)) $(if $(GITHUB_REPO),--github-repo $(GITHUB_REPO))

unmount: install
	@$(DEPLOY) unmount

docs: install
	$(PY) -m components.config_schema --pulumi-yaml
	$(PY) -m components.config_schema
