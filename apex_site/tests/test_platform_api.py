import shutil
import socket
import subprocess
import time

import pytest

from apex_site import __version__
from conftest import require_redis

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_redis(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            shutil.which("redis-server"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


@pytest.mark.integration
def test_readiness_is_503_while_redis_is_down_and_200_when_it_is_back(
    api_client, settings
):
    port = _free_port()
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    redis_proc = _start_redis(port)
    try:
        assert api_client.get("/v1/platform/readiness").status_code == 200

        redis_proc.terminate()
        redis_proc.wait(timeout=10)
        down = api_client.get("/v1/platform/readiness")
        assert down.status_code == 503
        assert down.json()["failing"] == ["redis"]
        assert down.json()["components"]["redis"]["ok"] is False
        assert down.json()["components"]["database"]["ok"] is True

        redis_proc = _start_redis(port)
        assert api_client.get("/v1/platform/readiness").status_code == 200
    finally:
        redis_proc.terminate()
        redis_proc.wait(timeout=10)


def test_readiness_reports_a_failing_database(api_client, monkeypatch):
    from apex_site import health

    def broken():
        return health._timed(lambda: (_ for _ in ()).throw(OSError("db gone")))

    monkeypatch.setattr(health, "check_database", broken)
    response = api_client.get("/v1/platform/readiness")
    assert response.status_code == 503
    assert "database" in response.json()["failing"]
