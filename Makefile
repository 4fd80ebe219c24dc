# APEX — the two commands are `make run` and `make test` (see README.md).
PY := .venv/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test venv system-deps migrate lint format worker online beat clean

run: venv migrate  ## set up and serve the product on http://127.0.0.1:8000 (embedded mode)
	$(PY) manage.py bootstrap
	$(PY) manage.py collectstatic --noinput -v 0
	@mkdir -p var
	@echo "==> training the quick ensemble in the background if no artifacts exist (var/train.log);"
	@echo "    until it finishes, recommendations come from the popularity/content fallback"
	$(PY) manage.py train --if-missing --profile quick > var/train.log 2>&1 &
	$(PY) -m uvicorn apex_site.asgi:application --host $(HOST) --port $(PORT) --lifespan off

test: system-deps venv  ## run the whole suite against throw-away PostgreSQL + Redis
	$(PY) scripts/run_tests.py $(PYTEST_ARGS)

venv:
	@bash scripts/ensure_venv.sh

system-deps:
	@bash scripts/system_deps.sh

migrate: venv
	$(PY) manage.py migrate --noinput -v 0

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

worker: venv  ## a Celery worker (needs REDIS_URL)
	$(PY) -m celery -A apex_site worker -Q default,learning,training -l INFO

online: venv  ## the online KAN learner: one process (needs REDIS_URL)
	$(PY) -m celery -A apex_site worker -Q online -n online@%h --concurrency 1 -l INFO

beat: venv  ## Celery beat (needs REDIS_URL)
	$(PY) -m celery -A apex_site beat -l INFO

clean:
	rm -rf .venv var/staticfiles .pytest_cache
