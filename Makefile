# Umbra — the two commands a newcomer needs are `make demo` and `make test`.
# Each sets up .venv from pinned requirements first (idempotent).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
UMBRA  := $(VENV)/bin/umbra
STAMP  := $(VENV)/.umbra-setup

.PHONY: setup test demo bench deploy emu clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	$(UMBRA) demo

bench: setup
	$(UMBRA) bench

deploy: setup
	$(UMBRA) deploy --port $(PORT)

# make emu FIRMWARE=path/to/micropython.elf [EMULATOR=qemu|renode]  (docs/boards.md)
emu: setup
	$(PY) -m tools.emu --firmware $(FIRMWARE) --emulator $(or $(EMULATOR),qemu)

clean:
	rm -rf $(VENV) var build bench/results.json
