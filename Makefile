# browserfleet: `make run` starts the server, `make test` runs the whole suite. Both install what is
# missing first (Debian packages, the venv, npm packages), so they work on a fresh Debian machine.

VENV      := .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
NODE_DIR  := tests/node
# postgresql: the suite starts a throwaway cluster of its own (harness/postgres.py) to test on it.
# webext-ublock-origin-chromium: only for its EasyList and EasyPrivacy snapshots (blockAds).
# libnss3-tools: certutil, which adds the CA certificates a session trusts to its browser.
APT_PKGS  := chromium chromium-driver bubblewrap postgresql webext-ublock-origin-chromium libnss3-tools
# Tests run with loopback only: nothing they start may send a packet off 127.0.0.1.
NETNS     := unshare --net sh -c 'ip link set lo up && exec "$$0" "$$@"'
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench lint typecheck check deps system-deps node-deps clean

run: deps
	$(VENV)/bin/browserfleet serve

test: deps node-deps lint typecheck
	$(NETNS) $(PY) -m pytest -q $(PYTEST_ARGS)

# Benchmarks (bench/README.md): side by side with direct Chromium, results in bench/RESULTS.md.
bench: deps
	$(NETNS) $(PY) -m bench

lint: deps
	$(VENV)/bin/ruff check src tests bench harness
	$(VENV)/bin/ruff format --check src tests bench harness

typecheck: deps
	$(VENV)/bin/mypy

check: lint typecheck test

deps: system-deps $(STAMP)

system-deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

node-deps: $(NODE_DIR)/node_modules/.installed

$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund
	touch $@

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules
