# dagserver — the few commands an operator or developer needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= examples/supervisor.toml

.PHONY: setup services run test screenshots lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,dev]'
	@touch $(STAMP)

run: setup
	@echo "dagserver: starting on $(CONFIG); log in at http://127.0.0.1:8080/ as admin: its password is printed below on the first start (no var/users.json yet)"
	@if [ -f var/users.json ]; then echo "dagserver: var/users.json exists, so no password is printed; set one with: $(BIN)/dagserver user add admin --role admin --users var/users.json"; fi
	$(BIN)/dagserver serve -c $(CONFIG)

# the services the tests start themselves, and openssl for the TLS test (Redis, MariaDB and PostgreSQL are
# expected to run already)
SERVICES ?= activemq zookeeper prometheus chromium openssl iproute2

services:
	@sh tests/support/install_services.sh $(SERVICES)

test: setup services
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# the README's pictures: the browser test, photographing into docs/screenshots (the tests alone write to a temporary
# folder: they never change the checkout)
screenshots: setup services
	DAGSERVER_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -q tests/web/test_browser.py \
		tests/web/test_browser_observe.py \
		tests/web/test_browser_insight.py

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
