"""Beat jobs: the usage roll-up and the meter report (one service each)."""

from __future__ import annotations

from celery import shared_task

from billing import services


@shared_task(name="billing.usage_rollup", queue="default")
def usage_rollup() -> int:
    return services.usage_rollup()


@shared_task(name="billing.meter_report", queue="default")
def meter_report() -> dict[str, int]:
    return services.meter_report()
