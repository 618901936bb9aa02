# Umbra — the two commands a newcomer needs are `make demo` and `make test`.
# Each sets up .venv from pinned requirements first (idempotent).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
UMBRA  := $(VENV)/bin/umbra
STAMP  := $(VENV)/.umbra-setup

.PHONY: setup test demo bench deploy emu emu-firmware emu-board clean

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

# The emulated MCUs' images from vendor/micropython (docs/boards.md §4): both
# targets (mps2-an500 M7, mps2-an385 M3 single-float), plain and frozen; cached
# in build/emu. Installs the ARM toolchain and QEMU with apt-get when root on Debian.
emu-firmware: setup
	$(PY) -m tools.emu build --both

# make emu-board [TARGET=an500|an385] [FROZEN=1] [HEAP=96K]: one board, its ports printed
emu-board: setup
	$(PY) -m tools.emu run --target $(or $(TARGET),an500) $(if $(FROZEN),--frozen) $(if $(HEAP),--heap $(HEAP))

clean:
	rm -rf $(VENV) var build bench/results.json
