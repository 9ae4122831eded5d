# The two commands of the course. Both set up .venv by themselves on a fresh machine.
#   make course   run every notebook in the detected profile, write course_output/
#   make test     lint (ruff), then the test suite (fast profile, offline, notebooks included)
SHELL := /bin/bash
PY := .venv/bin/python
# Real CIFAR-10 images beside the checkout are used when present (CI has them).
SHARED_DATA := $(abspath ../shared/data)
export LESSONS_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)

.PHONY: setup course test bench weights clean

setup:
	@bash scripts/setup_env.sh

course: setup
	$(PY) -m course_tools.course $(ARGS)

# Two pytest-xdist workers: one often waits on a kernel's start, a subprocess or a sandbox while the other
# computes. tests/conftest.py keeps what must run together in one group and sends the longest groups first.
# TEST_WORKERS=0 runs everything in this one process.
TEST_WORKERS ?= 2
test: setup
	$(PY) -m ruff check .
	LESSONS_PROFILE=fast LESSONS_CLAIMS=strict MPLBACKEND=Agg HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
		$(PY) -m pytest --nbval-lax -p no:cacheprovider -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder \
		$(PYTEST_ARGS)

# Retrain the course weights shipped in lessons_lib/weights/ (see course_tools/train_weights.py).
weights: setup
	LESSONS_PROFILE=fast $(PY) -m course_tools.train_weights $(ARGS)

bench: setup
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf course_output .pytest_cache
