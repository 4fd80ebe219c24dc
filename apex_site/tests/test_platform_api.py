import pytest

from apex_site import __version__
from conftest import require_redis
from scripts.servers import free_port, redis_server

pytestmark = pytest.mark.django_db


def test_status_reports_every_component(api_client):
    require_redis()
    body = api_client.get("/v1/platform/status").json()
    assert body["version"] == __version__
    assert body["run_mode"] == "production"  # PostgreSQL + Redis in tests
    assert body["database"]["ok"] is True
    assert body["database"]["detail"] == "postgresql"
    assert body["redis"]["ok"] is True
    assert body["celery"]["mode"] == "in-process"


def test_readiness_is_200_when_everything_answers(api_client):
    response = api_client.get("/v1/platform/readiness")
    assert response.status_code == 200
    assert response.json()["ready"] is True
    assert set(response.json()["components"]) == {"database", "redis"}


@pytest.mark.integration
def test_readiness_is_503_while_redis_is_down_and_200_when_it_is_back(
    api_client, settings
):
    port = free_port()
    with redis_server(port=port) as url:
        settings.REDIS_URL = url
        assert api_client.get("/v1/platform/readiness").status_code == 200

    down = api_client.get("/v1/platform/readiness")
    assert down.status_code == 503
    assert down.json()["failing"] == ["redis"]
    assert down.json()["components"]["redis"]["ok"] is False
    assert down.json()["components"]["database"]["ok"] is True

    with redis_server(port=port):
        assert api_client.get("/v1/platform/readiness").status_code == 200


def test_readiness_reports_a_failing_database(api_client, monkeypatch):
    from apex_site import health

    def broken():
        return health._timed(lambda: (_ for _ in ()).throw(OSError("db gone")))

    monkeypatch.setattr(health, "check_database", broken)
    response = api_client.get("/v1/platform/readiness")
    assert response.status_code == 503
    assert "database" in response.json()["failing"]
