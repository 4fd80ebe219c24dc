"""A task for the tests only: a worker started with ``--include
apex_site.tests.celery_probe`` runs it (``test_celery_connections``)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="tests.database_backend_pid")
def database_backend_pid() -> int:
    """The PostgreSQL backend serving this task's database connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]
