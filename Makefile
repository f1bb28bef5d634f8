# The two set-up commands of the README, and their parts.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
EXE := adapters/doge/haskell/build/doge-core-exe

.PHONY: replay test install system haskell lint bench

replay: install haskell                ## install, build the port, replay the bundled corpus
	shadowdiff replay

test: install haskell system           ## install, build the port, run the whole test suite
	$(PYTHON) -m pytest -q -p no:cacheprovider

install:
	$(PIP) install --quiet --disable-pip-version-check -e '.[test]'

haskell:
	bash adapters/doge/haskell/build.sh

system:                                ## Debian packages the tests use (headless Chromium for the HTML report)
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lint:
	ruff check . && ruff format --check shadowdiff && mypy shadowdiff && lint-imports

bench: install haskell
	$(PYTHON) bench/throughput.py
