# queuecast: everyday commands. `make run` and `make test` set everything up first.
SHELL := /bin/bash

.PHONY: all setup run test lint screenshots bench bench-notifier bench-faults bench-scale eta-eval clean

all: test

setup:
	scripts/setup.sh

run: setup
	.venv/bin/queuecast demo $(ARGS)

test:
	scripts/setup.sh --test
	$(MAKE) --no-print-directory lint
	.venv/bin/pytest $(PYTEST_ARGS)

# Lint, types, the import graph and module sizes (DESIGN.md section 8); part of `make test`.
lint:
	.venv/bin/ruff check hub displays notifier tests bench scripts
	.venv/bin/mypy
	.venv/bin/python scripts/imports.py --quiet
	@find hub displays notifier -name '*.py' | xargs wc -l | \
	  awk '$$2 != "total" && $$1 > 400 { print "lint: " $$2 " has " $$1 " lines (split it before 400)"; bad = 1 } END { exit bad }'

# The README's screenshots (rewrites docs/screenshots/; ARGS="--out DIR" to write elsewhere).
screenshots:
	scripts/setup.sh --test
	.venv/bin/python scripts/screenshots.py $(ARGS)

bench: setup
	.venv/bin/python bench/call_next.py

# Notifications through the outbox to a fake eSMS gateway, SQLite and Redis (docs/notifications.md).
bench-notifier:
	scripts/setup.sh --test
	.venv/bin/python bench/notifier.py $(ARGS)

# Redis faults with real processes (kill -9, failover, wipe, an older AOF, ...): docs/operations.md; ~5 min.
bench-faults:
	scripts/setup.sh --test
	.venv/bin/python bench/faults.py $(ARGS)

# Scale-out (issue 16): CPU per command with 1-3 hub processes, start-up with many branches, bytes
# per watching phone, board fan-out per call; ~5 min (ARGS="--quick", "--only cpu", "--branches 1000").
bench-scale:
	scripts/setup.sh --test
	.venv/bin/python bench/scale.py $(ARGS)

# The ETA estimator against NAIVE, QL and LES on held-out simulated days (docs/eta.md); a few minutes.
eta-eval: setup
	.venv/bin/python -c 'import matplotlib' 2>/dev/null || .venv/bin/python -m pip install -q -e '.[eval]'
	.venv/bin/python bench/eta_evaluate.py $(ARGS)

clean:
	rm -rf .venv build dist .pytest_cache .hypothesis .coverage *.egg-info
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
	find . -path ./.git -prune -o -type f \( -name "*.db" -o -name "*.db-wal" -o -name "*.db-shm" -o -name "*.db.secret" -o -name "*.db.vapid" \) -exec rm -f {} +
