import io

import pytest
from django.core.management import call_command

from accounts.models import User
from catalog.models import Movie
from catalog.tests import datafiles
from learning.models import Interaction

pytestmark = pytest.mark.django_db


@pytest.fixture
def configured(settings, tmp_path):
    settings.APEX_MOVIELENS_PATH = str(datafiles.write_ml100k(tmp_path / "ml-100k"))
    settings.APEX_TMDB_MOVIES_CSV = str(
        datafiles.write_tmdb_movies(tmp_path / "movies.csv")
    )
    settings.APEX_TMDB_CREDITS_CSV = ""
    settings.APEX_DEMO_EMAIL = "demo@example.com"
    settings.APEX_DEMO_PASSWORD = ""
    settings.APEX_SEARCH_INDEX_DIR = tmp_path / "search"
    return settings


def _bootstrap(*args) -> str:
    out = io.StringIO()
    call_command("bootstrap", "--search-index=skip", *args, stdout=out)
    return out.getvalue()


def test_it_loads_the_catalog_and_a_demo_account_with_a_movielens_history(configured):
    output = _bootstrap()

    assert Movie.objects.filter(ml100k_id__isnull=False).count() == 4
    assert Movie.objects.get(ml100k_id=1).tmdb_id == 862
    demo = User.objects.get(email="demo@example.com")
    password = output.split("password: ")[1].split()[0]
    assert demo.check_password(password)
    template = User.objects.get(source="movielens:ml-100k", external_id="1")
    copied = Interaction.objects.filter(user=demo).values_list("movie", "value")
    original = Interaction.objects.filter(user=template).values_list("movie", "value")
    assert sorted(copied) == sorted(original) and len(copied) == 2
    assert demo.gender == template.gender


def test_a_second_start_is_quick_and_changes_nothing(configured):
    _bootstrap()
    counts = (Movie.objects.count(), User.objects.count(), Interaction.objects.count())

    output = _bootstrap()

    assert "APEX is bootstrapped" in output
    assert "password:" not in output
    assert (
        Movie.objects.count(),
        User.objects.count(),
        Interaction.objects.count(),
    ) == counts


def test_reset_demo_password_prints_a_new_one(configured):
    _bootstrap()
    output = _bootstrap("--reset-demo-password")
    password = output.split("password: ")[1].split()[0]
    assert User.objects.get(email="demo@example.com").check_password(password)


def test_the_search_index_is_built_in_a_detached_process_by_default(
    configured, monkeypatch
):
    import subprocess

    started = []

    class FakePopen:
        def __init__(self, args, **kwargs):
            started.append((args, kwargs))

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    out = io.StringIO()

    call_command("bootstrap", stdout=out)

    ((args, kwargs),) = started
    assert args[-2:] == ["build_search_index", "--if-missing"]
    assert kwargs["start_new_session"] is True
    assert "building the semantic search index in the background" in out.getvalue()
