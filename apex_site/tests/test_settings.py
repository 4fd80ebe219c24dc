"""Start-up refuses malformed configuration, naming the variable."""

import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from apex_site.settings import integrations

ROOT = Path(__file__).resolve().parents[2]


def _start(env_overrides: dict, settings_module="apex_site.settings.base", args=None):
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}
    }
    env.update(DJANGO_SETTINGS_MODULE=settings_module, **env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *(args or ["check"])],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DJANGO_DEBUG", "maybe"),
        ("DATABASE_URL", "mysql-ish://nowhere"),
        ("DATABASE_URL", "postgres://user@host:5432/"),
        ("REDIS_URL", "http://localhost:6379"),
        ("REDIS_URL", "redis://localhost:notaport/0"),
        ("APEX_HEARTBEAT_SECONDS", "soon"),
        ("APEX_LOG_LEVEL", "LOUD"),
    ],
)
def test_a_malformed_variable_stops_start_up_naming_it(name, value, tmp_path):
    result = _start({name: value, "APEX_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert f"Environment variable {name}=" in result.stderr
    assert "malformed" in result.stderr


def test_the_embedded_default_needs_no_variables(tmp_path):
    result = _start(
        {"APEX_DATA_DIR": str(tmp_path)},
        args=[
            "shell",
            "-v",
            "0",
            "-c",
            "from django.conf import settings as s;"
            "print(s.RUN_MODE, s.DATABASES['default']['ENGINE'],"
            " s.CELERY_TASK_ALWAYS_EAGER,"
            " s.CHANNEL_LAYERS['default']['BACKEND'], s.CACHES['default']['BACKEND'])",
        ],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "embedded",
        "django.db.backends.sqlite3",
        "True",
        "channels.layers.InMemoryChannelLayer",
        "django.core.cache.backends.locmem.LocMemCache",
    ]


def test_production_requires_a_secret_key(tmp_path):
    result = _start(
        {
            "APEX_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://a@localhost/b",
            "REDIS_URL": "redis://localhost:6379/0",
        },
        settings_module="apex_site.settings.production",
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required" in result.stderr


def test_production_passes_check_deploy(tmp_path):
    result = _start(
        {
            "APEX_DATA_DIR": str(tmp_path),
            "DJANGO_SECRET_KEY": "k7#Qz!pW2@vN9$xR4^mT6&bY8*cL1(dF3)gH5_jK0+sA-eU=iO"
            * 2,
            "DATABASE_URL": "postgres://a@localhost/b",
            "REDIS_URL": "redis://localhost:6379/0",
            "DJANGO_ALLOWED_HOSTS": "apex.example.com",
        },
        settings_module="apex_site.settings.production",
        args=["check", "--deploy", "--fail-level", "WARNING"],
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_postgresql_connections_are_pooled_unless_turned_off(tmp_path):
    code = (
        "from django.conf import settings as s; d = s.DATABASES['default'];"
        "print(d['CONN_MAX_AGE'], d.get('OPTIONS', {}).get('pool', {}).get('max_size'))"
    )
    url = {"APEX_DATA_DIR": str(tmp_path), "DATABASE_URL": "postgres://a@localhost/b"}
    pooled = _start(url, args=["shell", "-v", "0", "-c", code])
    assert pooled.returncode == 0, pooled.stderr
    assert pooled.stdout.split() == ["0", "20"]
    unpooled = _start(
        {**url, "APEX_DB_POOL": "off"}, args=["shell", "-v", "0", "-c", code]
    )
    assert unpooled.stdout.split() == ["60", "None"]


def test_postgresql_binds_on_the_server_unless_turned_off(tmp_path):
    code = (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['OPTIONS'].get('server_side_binding'))"
    )
    url = {"APEX_DATA_DIR": str(tmp_path), "DATABASE_URL": "postgres://a@localhost/b"}
    for value, expected in ((None, "True"), ("off", "False")):
        env = url if value is None else {**url, "APEX_DB_SERVER_SIDE_BINDING": value}
        result = _start(env, args=["shell", "-v", "0", "-c", code])
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [expected]


def test_the_middleware_chain_runs_synchronously_under_asgi():
    """Django's async-capable middleware switch threads around every hook
    under ASGI; ``SyncChainMiddleware`` keeps the chain in one thread
    (apex_site/middleware.py). Count the sync->async adaptations of one
    request through the ASGI handler."""
    import asyncio
    from unittest import mock

    from asgiref.sync import SyncToAsync
    from django.conf import settings
    from django.test import AsyncClient

    assert settings.MIDDLEWARE[-1] == "apex_site.middleware.SyncChainMiddleware"
    calls = []
    original = SyncToAsync.__call__

    async def counting(self, *args, **kwargs):
        calls.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await original(self, *args, **kwargs)

    async def one_request():
        return await AsyncClient().get("/no-such-page")

    with mock.patch.object(SyncToAsync, "__call__", counting):
        response = asyncio.run(one_request())
    assert response.status_code == 404
    # request_started + the chain + request_finished; ~20 more without it.
    assert len(calls) <= 6, calls


INTEGRATIONS = sorted(m.name for m in pkgutil.iter_modules(integrations.__path__))


def _settings_module(name: str):
    return importlib.import_module(f"apex_site.settings.{name}")


@pytest.mark.parametrize("name", INTEGRATIONS)
def test_base_gets_every_setting_an_integration_module_defines(name):
    """base.py star-imports each integrations/ module, so a setting left out of
    the module's ``__all__``, or a module base.py forgets, silently vanishes."""
    base = _settings_module("base")
    module = _settings_module(f"integrations.{name}")
    modules = [_settings_module("paths")]
    modules += [_settings_module(f"integrations.{n}") for n in INTEGRATIONS]
    owners = {setting: owner for owner in modules for setting in owner.__all__}
    borrowed = {  # e.g. REDIS_URL, imported from integrations/redis.py
        setting
        for setting, value in vars(module).items()
        if setting in owners
        and owners[setting] is not module
        and value is getattr(owners[setting], setting)
    }
    defined = {setting for setting in vars(module) if setting.isupper()} - borrowed
    assert defined == set(module.__all__)
    for setting in module.__all__:
        assert getattr(base, setting, None) is getattr(module, setting), setting
