import pytest

pytestmark = pytest.mark.django_db


def test_unknown_api_paths_use_the_error_shape(client):
    response = client.get("/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {
        "code": "not_found",
        "message": "No such resource.",
        "detail": {"path": "/v1/no-such-thing"},
    }


def test_unauthenticated_calls_get_401_with_the_error_shape(api_client):
    response = api_client.get("/v1/auth/me")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_openapi_schema_documents_the_endpoints(client):
    response = client.get("/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in ("/v1/auth/register", "/v1/auth/token", "/v1/platform/status"):
        assert path in schema["paths"]
    assert "ApiKeyAuth" in schema["components"]["securitySchemes"]


def test_swagger_ui_is_served_with_local_assets(client):
    response = client.get("/docs")
    html = response.content.decode()
    assert response.status_code == 200
    assert "swagger-ui" in html
    assert "/static/drf_spectacular_sidecar/" in html
    assert "cdn.jsdelivr" not in html


def test_the_throttle_uses_the_plan_rate(api_client, settings):
    settings.APEX_PLAN_RATE_RESOLVER = (
        "apex_site.tests.test_api_conventions.two_per_minute"
    )
    from django.core.cache import cache

    cache.clear()
    codes = [api_client.post("/v1/auth/register", {}).status_code for _ in range(3)]
    assert codes == [400, 400, 429]
    assert api_client.post("/v1/auth/register", {}).json()["code"] == "throttled"
    cache.clear()


def two_per_minute(request):
    return "2/min"


def test_home_page_renders(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "Sign up" in response.content.decode()


def test_the_openapi_schema_is_valid_and_warning_free(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert "/v1/platform/readiness" in out.read_text()
