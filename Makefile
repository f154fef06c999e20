# Everything a fresh Debian / Raspberry Pi OS machine needs, in two commands:
#   make demo   — install and start a throwaway hub with the built-in camera
#   make test   — install and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo run test lint bench screenshots system-deps test-system-deps clean

# LISTEN=0.0.0.0:8080 serves the demo to other machines on the LAN (a headless Pi).
demo: $(VENV)/.installed
	$(BIN)/camhub demo $(if $(LISTEN),--listen $(LISTEN))

run: $(VENV)/.installed
	$(BIN)/camhub run --config $(or $(CONFIG),/etc/camhub/camhub.toml)

test: $(VENV)/.installed-test test-system-deps
	$(BIN)/ruff check hub tests bench
	$(BIN)/python -m pytest -q
	$(BIN)/python bench/bench_pipeline.py --short
	$(BIN)/python bench/bench_live.py --short
	$(BIN)/python bench/bench_hdlive.py --short
	$(BIN)/python bench/bench_alerts.py --short
	$(BIN)/python bench/bench_faults.py --short
	$(BIN)/python bench/bench_events_page.py --short
	$(BIN)/python bench/bench_offsite.py --short
	$(BIN)/python bench/bench_audio.py --short
	$(BIN)/python bench/bench_recordings.py --short
	$(BIN)/python bench/bench_health.py --short

lint: $(VENV)/.installed-test
	$(BIN)/ruff check hub tests bench
	$(BIN)/ruff format --check hub tests bench

bench: $(VENV)/.installed-test
	$(BIN)/python bench/bench_pipeline.py
	$(BIN)/python bench/bench_audio.py

screenshots: $(VENV)/.installed-test test-system-deps
	CAMHUB_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -q tests/test_browser.py tests/test_browser_alerts.py tests/test_browser_settings.py tests/test_browser_timeline.py tests/test_browser_health.py

system-deps:
	scripts/system-deps.sh runtime

test-system-deps:
	scripts/system-deps.sh test

$(VENV)/.installed: pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache
