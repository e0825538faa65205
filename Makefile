# Two commands on a fresh machine:  make lab  (tutorial)  and  make test  (whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch that this project's CI tests; pip takes it from the local disk here.
TORCH ?= torch==2.13.0

.PHONY: env lab test lint unit notebooks browser-deps bench sync execute clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# JupyterLab on notebooks/; extra arguments pass through: make lab ARGS="--no-browser --port=8899"
# (as root, e.g. in a container, it adds --allow-root, which Jupyter otherwise demands)
ARGS ?=
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
lab: env
	$(BIN)/jupyter lab $(ROOT_FLAG) $(ARGS) notebooks/

# ruff, unit tests (browser test included), then nbval over every notebook in CI quick mode.
test: env browser-deps lint unit notebooks

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: env
	OMP_NUM_THREADS=1 $(BIN)/pytest -n 2 --dist loadfile -p no:cacheprovider tests/

# nbval compares no images: no PNG export here (ELASTIC_EDU_FIGURE_PNG=0) keeps it fast
notebooks: env
	ELASTIC_EDU_QUICK=1 ELASTIC_EDU_FIGURE_PNG=0 OMP_NUM_THREADS=1 $(BIN)/pytest -p no:cacheprovider --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=600 --nbval-sanitize-with notebooks/sanitize.cfg \
		-n 2 --dist loadscope notebooks/

# after editing a notebook's source (notebooks/NN_name.py) outside JupyterLab: update its .ipynb
sync: env
	$(BIN)/jupytext --sync notebooks/[0-9][0-9]_*.py

# re-run every notebook as committed (quick mode, a PNG beside each figure), one at a time
execute: env browser-deps
	$(BIN)/python scripts/execute_notebooks.py

browser-deps:
	bash scripts/install_browser.sh

bench: env
	$(BIN)/python -m elastic_edu bench --out results/bench-cpu.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
