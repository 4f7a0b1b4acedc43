# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test install clean

$(BIN)/syncbridge: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/syncbridge

## Run the whole flow with embedded defaults and the simulators (no account needed).
run: install
	$(BIN)/syncbridge run

## Run every test; needs RabbitMQ on 127.0.0.1:5672 and PostgreSQL on 127.0.0.1:5432.
test: install
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info
