import pytest

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_task_runs_in_a_real_worker_process(real_celery, api_client):
    from apex_site.celery import record_heartbeat

    result = record_heartbeat.apply_async(queue="default")
    assert result.get(timeout=30)["hostname"].startswith("pytest@")

    status = api_client.get("/v1/platform/status").json()["celery"]
    assert status["mode"] == "worker"
    assert status["workers_online"] >= 1
    assert any(w.startswith("pytest@") for w in status["workers"])
    assert status["last_heartbeat_age_s"] is not None
    assert status["last_heartbeat_age_s"] < 30
