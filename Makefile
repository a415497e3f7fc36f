# Two entry points: `make book` and `make test`. Both bootstrap .venv from the pinned files.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export PYTHONHASHSEED := 0
export OMP_WAIT_POLICY := PASSIVE

.PHONY: all venv data book test test-fast bench lock clean verify lint browser

all: test

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e ".[book,test]"
	$(PY) -m pip install --quiet --no-deps torchattacks==3.5.1  # not in pyproject: see the comment there
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

venv: $(STAMP)

# MNIST (sha256-checked) and the vendored MathJax: both fetched, both git-ignored.
data: $(STAMP)
	$(PY) -m robustlib fetch

# Execute every notebook at the quick profile (reusing committed artifacts) and build the site.
book: data
	$(PY) -m robustlib book --profile quick

# Debian's chromium for the browser test of the built book, installed where apt-get can (root).
browser:
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium is missing: the browser test will skip (sudo apt-get install chromium)"

# Unit tests, every notebook at the smoke profile, a strict book build and a browser test of it.
test: data browser
	$(PY) -m pytest -x -q --durations=15

# Unit tests only (no notebooks, no book build).
test-fast: data
	$(PY) -m pytest -x -q -m "not notebook and not book"

bench: data
	$(PY) -m robustlib bench

verify: $(STAMP)
	$(PY) -m robustlib verify

lock: $(STAMP)
	( echo "# Full dependency tree, pinned; used as pip constraints by the Makefile. Regenerate with \`make lock\`."; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^robustlib' ) > requirements.lock

clean:
	rm -rf _build

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
