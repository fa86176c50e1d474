# One-command set-up for users and CI. `make demo` and `make test` create .venv first, with
# the exact versions of requirements.lock; `make lock` refreshes the lock, `make lock-check`
# (part of `make test`) fails while it and pyproject.toml disagree.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
LOCK_VENV := .lock-venv

.PHONY: venv demo test lint clean browser lock lock-check

# The install order that works, for `venv` (the lock's versions: $(2) = -c $(LOCK)) and
# `lock` (the newest within pyproject.toml's ranges: $(2) empty); $(1) the environment.
# PyRadiomics 3.0.1 needs numpy at build time (PyPI's 3.1.0 is broken); torch and
# torchvision are pinned to a pair that import together.
define install_base
	rm -rf $(1)
	$(PYTHON) -m venv $(1)
	$(1)/bin/pip install $(2) --upgrade pip
	$(1)/bin/pip install $(2) numpy setuptools wheel
	$(1)/bin/pip install $(2) --no-build-isolation pyradiomics==3.0.1
	$(1)/bin/pip install $(2) torch==2.14.1 torchvision==0.29.1
endef

$(BIN)/dlrn: pyproject.toml $(LOCK)
	PYTHONPATH=src $(PYTHON) -m dlrn.lockfile platform
	$(call install_base,$(VENV),-c $(LOCK))
	# every other package at its locked version; nothing the lock lacks comes in unseen
	$(BIN)/pip install --no-deps -r $(LOCK)
	PYTHONPATH=src $(BIN)/python -m dlrn.lockfile verify
	$(BIN)/pip install --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $(BIN)/dlrn

venv: $(BIN)/dlrn

demo: venv
	$(BIN)/dlrn demo --out dlrn-demo

# The browser tests need Debian's chromium and its driver: installed here when missing
# and running as root (CI); otherwise those tests skip (or fail under CI=true).
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; \
		else \
			echo "chromium/chromedriver missing: run 'sudo apt-get install chromium chromium-driver'"; \
		fi; \
	fi

test: venv browser lock-check
	$(BIN)/python -m pytest -q

# pyproject.toml's requirements against the lock's: run by `make test`, hence CI.
lock-check: venv
	$(BIN)/python -m dlrn.lockfile check

# After changing pyproject.toml's dependencies: install them afresh (newest versions within
# its ranges, the order above) and pin what got installed; commit requirements.lock.
lock:
	$(call install_base,$(LOCK_VENV),)
	$(LOCK_VENV)/bin/pip install --no-build-isolation -e '.[dev]'
	$(LOCK_VENV)/bin/python -m dlrn.lockfile write $(LOCK)
	rm -rf $(LOCK_VENV)

lint: venv
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) $(LOCK_VENV) dlrn-demo
