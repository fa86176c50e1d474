# One-command set-up for users and CI. `make demo` and `make test` create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv demo test lint clean browser

$(BIN)/dlrn: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# PyRadiomics 3.0.1 needs numpy at build time (PyPI's 3.1.0 is broken).
	$(BIN)/pip install numpy setuptools wheel
	$(BIN)/pip install --no-build-isolation pyradiomics==3.0.1
	# torch/torchvision pinned to a pair that import together.
	$(BIN)/pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -e '.[dev]'
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

test: venv browser
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) dlrn-demo
