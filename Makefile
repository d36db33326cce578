# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv on first use. torch is pinned to 2.13.0: on this project's machines pip takes a
# local CPU-only wheel (~1.7 GB venv); elsewhere PyPI serves its default build (CUDA on Linux, several GB).
# fastai pulls torchvision 0.28.0 along; cflearn never imports it (fastai.collab does not need it).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0 torchvision==0.28.0
# Use the MovieLens copy beside the checkout when there is one (no download needed then).
SHARED := $(wildcard $(CURDIR)/../shared/data/ml-latest-small/ratings.csv)
ifneq ($(SHARED),)
export CFLEARN_DATA ?= $(abspath $(CURDIR)/../shared/data)
endif
export MPLBACKEND := Agg
export NO_MKDOCS_2_WARNING := 1

.PHONY: demo test docs course-env bench bench-peers install clean chromium sandbox
$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,docs]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/cflearn demo

# Two pytest workers (pytest-xdist), a file each at a time, one thread each (tests/conftest.py):
# about 9 minutes on a 2-core machine where one process took 13.
test: install chromium sandbox
	$(PY) -m mypy cflearn
	$(PY) -m pytest -q -n 2 --dist loadfile

# The documentation site in site/ (warnings are errors). The lessons are executed once per version of
# each (kept in build/lessons/), with their own epochs: a first build takes a few minutes.
docs: install
	$(PY) -m mkdocs build --strict

# Jupyter Lab and nbconvert in .venv, as `pip install "cflearn[course]"` gives a student.
course-env: install
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[course]'

# Grading runs each submission's kernel in a bubblewrap sandbox; install Debian's package when missing and we can.
sandbox:
	@command -v bwrap >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap \
	     >/dev/null) ; } || echo "note: no bubblewrap here (apt-get install bubblewrap); grading runs unsandboxed and says so"

# The report's browser test drives headless Chromium; install Debian's package when missing and we can.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium \
	     >/dev/null) ; } || echo "note: no Chromium here (apt-get install chromium); the browser test will be skipped"

bench: install
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	$(PY) bench/run.py

# bench/ranking.py's peers (implicit, LensKit) in a venv of their own: LensKit pins pandas < 3.
PEERS := .venv-peers
$(PEERS)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(PEERS)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[peers]'
	touch $@

bench-peers: $(PEERS)/.installed
	$(PEERS)/bin/python bench/ranking.py

clean:
	rm -rf $(VENV) $(PEERS) runs .pytest_cache site build dist
