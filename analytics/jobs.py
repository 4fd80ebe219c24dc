"""The last run of every Celery task (the dashboard's jobs panel).

Celery's signals record each task's start, duration and outcome in the
shared cache (Redis in production: one SET per run, never the database),
under one key per task name, with the set of names seen.
"""

from __future__ import annotations

import time
from typing import Any

from celery import signals
from django.core.cache import cache

_NAMES_KEY = "analytics:jobs"
_KEEP = 7 * 24 * 3600
_started: dict[str, float] = {}


def _key(name: str) -> str:
    return f"analytics:job:{name}"


def job_record(
    *, name: str, started: float, seconds: float, ok: bool, detail: str = ""
) -> None:
    try:
        names = set(cache.get(_NAMES_KEY) or ())
        if name not in names:
            cache.set(_NAMES_KEY, sorted(names | {name}), _KEEP)
        cache.set(
            _key(name),
            {
                "name": name,
                "started": started,
                "seconds": seconds,
                "ok": ok,
                "detail": detail[:500],
            },
            _KEEP,
        )
    except Exception:  # noqa: BLE001 - bookkeeping never fails a task
        pass


def job_list() -> list[dict[str, Any]]:
    names = cache.get(_NAMES_KEY) or []
    rows = cache.get_many([_key(n) for n in names])
    return sorted(rows.values(), key=lambda r: r["name"])


def _on_prerun(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _started[task_id] = time.time()


def _on_postrun(
    task_id: str | None = None,
    task: Any = None,
    state: str | None = None,
    retval: Any = None,
    **_: Any,
) -> None:
    started = _started.pop(task_id or "", None)
    if started is None or task is None:
        return
    ok = state == "SUCCESS"
    job_record(
        name=task.name,
        started=started,
        seconds=time.time() - started,
        ok=ok,
        detail="" if ok else repr(retval),
    )


def connect() -> None:
    signals.task_prerun.connect(_on_prerun, weak=False, dispatch_uid="analytics-prerun")
    signals.task_postrun.connect(
        _on_postrun, weak=False, dispatch_uid="analytics-postrun"
    )
