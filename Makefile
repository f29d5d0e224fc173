# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint demo bench soak load clean venv

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

lint: $(STAMP)
	$(VENV)/bin/ruff check greenpoint tests examples bench
	$(VENV)/bin/ruff format --check greenpoint tests examples bench

demo: $(STAMP)
	$(PY) examples/demo.py

# The peers are installed here, not in the package extras: only the benchmark needs them
# (gunicorn for the wsgi scenarios; wrk, the load generator there, is a Debian package).
# uvloop is best effort (no wheel for some platforms); its rows then say "not available".
bench: $(STAMP)
	$(PY) -m pip install --quiet twisted trio gunicorn
	$(PY) -m pip install --quiet uvloop || echo "uvloop did not install; the bench reports it as not available"
	$(PY) bench/run.py $(BENCH_ARGS)

soak: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m soak

# Full-size load (1,000 x 256 KiB echo over TCP/UNIX/TLS, 10,000 connects) and a
# minute of atheris per parser. Figures: GREENPOINT_FIGURES=figures.jsonl make load
load: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m load

clean:
	rm -rf $(VENV) build dist *.egg-info
