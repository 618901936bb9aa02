# Umbra — the two commands a newcomer needs are `make demo` and `make test`.
# Each sets up .venv from pinned requirements first (idempotent).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
UMBRA  := $(VENV)/bin/umbra
STAMP  := $(VENV)/.umbra-setup

.PHONY: setup test demo demo-fleet bench deploy emu emu-firmware emu-board clean

UI_DIR   := tools/console/ui
UI_STAMP := $(UI_DIR)/node_modules/.umbra-ui

setup: $(STAMP) $(UI_STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# The operator view's Open MCT, pinned by $(UI_DIR)/package-lock.json, into the
# git-ignored $(UI_DIR)/node_modules (docs/operator.md). The Console's API does
# not need it: without npm or the registry this says so and setup goes on.
$(UI_STAMP): $(UI_DIR)/package.json $(UI_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1 && npm ci --prefix $(UI_DIR) --ignore-scripts \
	    --no-audit --no-fund --loglevel=error --fetch-retries=1; then touch $@; \
	else echo "operator view: Open MCT not installed (npm ci in $(UI_DIR) failed or no npm);" \
	    "the Console's API works without it"; fi

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	$(UMBRA) demo

demo-fleet: setup
	$(UMBRA) demo --fleet examples/fleets/train-4.json

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
	rm -rf $(VENV) var build bench/results.json $(UI_DIR)/node_modules
