# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-min lint typecheck demo bench soak load clean venv

venv: $(STAMP)

$(STAMP): setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lint]'
	# atheris fuzzes the parsers; a wheel exists for CPython on Linux x86_64, elsewhere
	# it needs clang, so it is optional and its tests say why they skip without it.
	-$(PY) -m pip install --quiet atheris
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

# The declared dependency floors, tested: a fresh virtualenv with exactly the oldest
# allowed gevent, pyOpenSSL, cryptography, service-identity and idna (constraints-min.txt),
# on the oldest supported Python (3.10, on PATH or under pyenv) when there is one.
MIN_VENV ?= .venv-min
MIN_PYTHON ?= $(firstword $(foreach c,python3.10 $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.10*/bin/python3.10),$(shell $(c) -c 'import sys; print(sys.version_info[:2] == (3, 10))' 2>/dev/null | grep -qx True && echo $(c))) $(PYTHON))

test-min:
	rm -rf $(MIN_VENV)
	$(MIN_PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MIN_VENV)/bin/python -m pip install --quiet -c constraints-min.txt '.[test]'
	@$(MIN_VENV)/bin/python -c 'import sys; print("test-min on Python", sys.version.split()[0])'
	@$(MIN_VENV)/bin/python -m pip list --format=freeze | grep -iE '^(gevent|pyopenssl|cryptography|service.identity|idna)=='
	$(MIN_VENV)/bin/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check greenpoint tests examples bench
	$(VENV)/bin/ruff format --check greenpoint tests examples bench
	$(VENV)/bin/mypy

# mypy --strict on all of greenpoint/ and tests/typing/ (pyproject.toml [tool.mypy]).
typecheck: $(STAMP)
	$(VENV)/bin/mypy

demo: $(STAMP)
	$(PY) examples/demo.py

# The peers are installed here, not in the package extras: only the benchmark needs them
# (gunicorn for the wsgi scenarios; wrk, the load generator there, is a Debian package).
# uvloop is best effort (no wheel for some platforms); its rows then say "not available".
bench: $(STAMP)
	$(PY) -m pip install --quiet twisted trio gunicorn
	$(PY) -m pip install --quiet uvloop || echo "uvloop did not install; the bench reports it as not available"
	$(PY) bench/run.py $(BENCH_ARGS)
	# Stand-alone measurements with their own reports (bench/README.md explains each).
	$(PY) bench/proxy_latency.py
	$(PY) bench/tls_resumption.py --version TLSv1.3
	$(PY) bench/tls_resumption.py --version TLSv1.2

soak: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m soak

# Full-size load (1,000 x 256 KiB echo over TCP/UNIX/TLS, 10,000 connects) and a
# minute of atheris per parser. Figures: GREENPOINT_FIGURES=figures.jsonl make load
load: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m load

clean:
	rm -rf $(VENV) $(MIN_VENV) build dist *.egg-info
