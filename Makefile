# couponsvc: `make run` installs and runs the service with demo data; `make test` installs and runs every test.
PYTHON ?= python3
VENV := .venv
SOAP_SDK := .venv-soap
REST_SDK := .venv-rest
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: run test install sdks system-deps lint typecheck check bench screenshots clean

run: $(VENV)/.installed
	$(VENV)/bin/couponsvc serve --demo

test: system-deps $(VENV)/.installed $(SOAP_SDK)/.installed $(REST_SDK)/.installed
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Debian packages the tests use: Chromium (the console's browser tests drive it through Playwright; no
# browser is ever downloaded) and Postfix's smtp-sink (a fast relay for delivery tests and benchmarks;
# no Postfix daemon is started).  Installed with apt-get when missing and running as root.
SYSTEM_PACKAGES := chromium:/usr/bin/chromium postfix:/usr/sbin/smtp-sink
system-deps:
	@missing=""; for entry in $(SYSTEM_PACKAGES); do \
	  pkg=$${entry%%:*}; path=$${entry#*:}; [ -x "$$path" ] || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian packages:$$missing"; \
	    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; \
	  else \
	    echo "The tests need these Debian packages:$$missing. Install them: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi

install: $(VENV)/.installed

sdks: $(SOAP_SDK)/.installed $(REST_SDK)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_QUIET) --upgrade pip
	$(VENV)/bin/pip install $(PIP_QUIET) -e '.[test]'
	touch $@

# The official SDKs both install a module named `bingads`: each gets its own environment.
$(SOAP_SDK)/.installed: tests/sdk/requirements-soap.txt
	$(PYTHON) -m venv $(SOAP_SDK)
	$(SOAP_SDK)/bin/pip install $(PIP_QUIET) -r tests/sdk/requirements-soap.txt
	touch $@

$(REST_SDK)/.installed: tests/sdk/requirements-rest.txt
	$(PYTHON) -m venv $(REST_SDK)
	$(REST_SDK)/bin/pip install $(PIP_QUIET) -r tests/sdk/requirements-rest.txt
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests bench

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

check: lint typecheck

# Refresh the console screenshots in docs/ (the README shows them) from the browser tests.
screenshots: system-deps $(VENV)/.installed
	COUPONSVC_SCREENSHOTS=$(CURDIR)/docs $(VENV)/bin/pytest tests/test_console_browser.py -q

# every benchmark against its floor (about 15 minutes on 2 cores; SCALE_ARGS='--max 1000000' for a shorter curve)
bench: $(VENV)/.installed
	$(VENV)/bin/python bench/dispatch_http.py
	$(VENV)/bin/python bench/codes_import.py
	$(VENV)/bin/python bench/delivery_smtp.py
	$(VENV)/bin/python bench/search_coupons.py
	$(VENV)/bin/python bench/scaleout.py
	$(VENV)/bin/python bench/load_bounds.py
	$(VENV)/bin/python bench/console_scale.py
	$(VENV)/bin/python bench/throttle.py
	$(VENV)/bin/python bench/scale_curve.py $(SCALE_ARGS)

clean:
	rm -rf $(VENV) $(SOAP_SDK) $(REST_SDK) couponsvc-data .pytest_cache .mypy_cache
