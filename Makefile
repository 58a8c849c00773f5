# couponsvc: `make run` installs and runs the service with demo data; `make test` installs and runs every test.
PYTHON ?= python3
VENV := .venv
SOAP_SDK := .venv-soap
REST_SDK := .venv-rest
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: run test install sdks lint typecheck bench clean

run: $(VENV)/.installed
	$(VENV)/bin/couponsvc serve --demo

test: $(VENV)/.installed $(SOAP_SDK)/.installed $(REST_SDK)/.installed
	$(VENV)/bin/pytest $(PYTEST_ARGS)

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

# every benchmark against its floor (about 15 minutes on 2 cores; SCALE_ARGS='--max 1000000' for a shorter curve)
bench: $(VENV)/.installed
	$(VENV)/bin/python bench/dispatch_http.py
	$(VENV)/bin/python bench/codes_import.py
	$(VENV)/bin/python bench/delivery_smtp.py
	$(VENV)/bin/python bench/search_coupons.py
	$(VENV)/bin/python bench/scaleout.py
	$(VENV)/bin/python bench/scale_curve.py $(SCALE_ARGS)

clean:
	rm -rf $(VENV) $(SOAP_SDK) $(REST_SDK) couponsvc-data .pytest_cache .mypy_cache
