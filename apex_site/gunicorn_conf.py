"""gunicorn's settings, for serving the WSGI application with gunicorn.

The production shape serves HTTP with granian (``docker-compose.yml``,
``scripts/stack.py``): measured beside gunicorn on this project's endpoints
it was as fast where the engine dominates and ~30 % faster on the framework
floor (``docs/BENCHMARKS.md``, issue 17). This file keeps gunicorn one flag
away (``scripts/stack.py --wsgi gunicorn``, the benchmarks' comparison):
``gunicorn -c apex_site/gunicorn_conf.py apex_site.wsgi:application``. Every
value comes from the environment (strict readers):

- ``APEX_WSGI_BIND`` (``127.0.0.1:8000``), ``APEX_WSGI_WORKERS`` (2: one per
  core on the reference machine);
- ``APEX_WSGI_THREADS`` (4): gthread workers with that many threads each
  (1: sync workers, which close every connection after one request);
- ``APEX_WSGI_TIMEOUT`` (30 s), ``APEX_WSGI_MAX_REQUESTS`` (0: never recycle).

With ``PROMETHEUS_MULTIPROC_DIR`` set, a worker that exits is marked dead in
prometheus-client's multiprocess store, so its live gauges stop counting.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apex_site.settings.environment import env_int, env_str  # noqa: E402

bind = env_str("APEX_WSGI_BIND", "127.0.0.1:8000")
workers = env_int("APEX_WSGI_WORKERS", 2, minimum=1)
threads = env_int("APEX_WSGI_THREADS", 4, minimum=1)
worker_class = "gthread" if threads > 1 else "sync"
timeout = env_int("APEX_WSGI_TIMEOUT", 30, minimum=1)
graceful_timeout = timeout
keepalive = 5
max_requests = env_int("APEX_WSGI_MAX_REQUESTS", 0, minimum=0)
max_requests_jitter = max_requests // 10
accesslog = None
errorlog = "-"
loglevel = env_str("APEX_WSGI_LOG_LEVEL", "warning")
forwarded_allow_ips = "127.0.0.1"


def child_exit(server, worker) -> None:  # gunicorn server hook
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
