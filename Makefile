# pgjax developer commands. `make test` works on a fresh machine with Python >= 3.10:
# it creates .venv if missing, installs pgjax with its test extra (and tensorboard and
# xminigrid, whose tracker and env-adapter tests then run: a few seconds to install, about
# 35 s of tests on 2 cores), and runs the tests. The other extras' tests run once they are in:
# make install EXTRAS=test,tensorboard,xminigrid,brax,wandb,mlflow (brax: 7 s and 140 MB to
# install, about 45 s more of tests on 2 cores, over CI's 15-minute budget; tests/test_brax.py)
PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= test,tensorboard,xminigrid
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(EXTRAS)

.PHONY: install train test test-slow clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

# Train the default config (the cartpole_a2c preset) with progress; the run directory goes
# to runs/. Options pass through ARGS, e.g. make train ARGS="--seeds 4".
train: $(STAMP)
	$(BIN)/pgjax train $(ARGS)

# Fast suite (unit tests, doctests, README examples, CI-sized learning tests), one test
# file per core (pytest-xdist; a file's module fixtures stay in one process).
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -n auto --dist loadfile --durations=20 $(PYTEST_ARGS)

# Long learning runs, excluded from `make test` and CI.
# (pytest exits 5 when no test is marked slow; that is reported, not treated as a failure.)
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "no slow tests yet"; else exit $$status; fi

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
