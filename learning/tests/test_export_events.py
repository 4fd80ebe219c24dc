import io
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from accounts.tests.factories import UserFactory
from catalog.tests.factories import MovieFactory
from learning import tasks
from learning.exports import EVENTS_SCHEMA, events_export
from learning.models import Interaction
from learning.tests.factories import InteractionFactory

pytestmark = pytest.mark.django_db


def _age(seconds: float) -> None:
    """Make every row old enough to pass the settle window."""
    Interaction.objects.update(created_at=timezone.now() - timedelta(seconds=seconds))


def _files(lake) -> list:
    return sorted((lake / "landing" / "events").glob("events-*.parquet"))


def test_it_writes_new_events_with_the_contract_schema(tmp_path):
    ml_user = UserFactory(source="movielens:ml-100k", external_id="196")
    movie = MovieFactory(ml100k_id=242, movielens_id=1, tmdb_id=862)
    InteractionFactory(
        user=ml_user,
        movie=movie,
        value=3.0,
        source="movielens:ml-100k",
        occurred_at=datetime(1997, 12, 4, 15, 55, 49, tzinfo=UTC),
        idempotency_key="movielens:ml-100k:196:242",
    )
    web = InteractionFactory(movie=movie, kind="click", value=None, source="web")
    _age(60)

    result = events_export(lake_dir=tmp_path)

    assert result.rows == 2 and result.path == _files(tmp_path)[0]
    assert result.path.name.startswith("events-") and result.path.name.endswith(
        "Z.parquet"
    )
    table = pq.read_table(result.path)
    assert table.schema.equals(EVENTS_SCHEMA)
    imported, click = table.to_pylist()
    assert imported["movielens_user_id"] == 196
    assert imported["movielens_id"] == 242  # ML-100K's own id for an ML-100K event
    assert imported["tmdb_id"] == 862
    assert imported["occurred_at"] == datetime(1997, 12, 4, 15, 55, 49, tzinfo=UTC)
    assert (click["event_id"], click["user_id"]) == (web.pk, web.user_id)
    assert click["movielens_user_id"] is None and click["value"] is None
    assert click["movielens_id"] == 1 and click["kind"] == "click"


def test_a_rerun_exports_nothing_then_only_the_new_rows(tmp_path):
    InteractionFactory.create_batch(3)
    _age(60)
    events_export(lake_dir=tmp_path)

    assert events_export(lake_dir=tmp_path).rows == 0
    assert len(_files(tmp_path)) == 1

    newer = InteractionFactory()
    _age(60)
    result = events_export(lake_dir=tmp_path)
    assert result.rows == 1 and result.first_event_id == newer.pk
    assert len(_files(tmp_path)) == 2


def test_rows_younger_than_the_settle_window_wait_for_the_next_run(tmp_path):
    InteractionFactory()
    assert events_export(lake_dir=tmp_path, settle_seconds=300).rows == 0
    assert events_export(lake_dir=tmp_path, settle_seconds=0).rows == 1


def test_since_limits_the_export_to_recent_rows(tmp_path):
    old, recent = InteractionFactory(), InteractionFactory()
    Interaction.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(days=3)
    )
    Interaction.objects.filter(pk=recent.pk).update(
        created_at=timezone.now() - timedelta(hours=1)
    )
    out = io.StringIO()
    since = (timezone.now() - timedelta(days=1)).isoformat()

    call_command("export_events", since=since, lake_dir=str(tmp_path), stdout=out)

    assert "exported 1 events" in out.getvalue()
    table = pq.read_table(_files(tmp_path)[0])
    assert table.column("event_id").to_pylist() == [recent.pk]


def test_the_daily_task_is_scheduled_and_runs_the_same_export(tmp_path, settings):
    settings.APEX_LAKE_DIR = tmp_path
    InteractionFactory()
    _age(60)

    outcome = tasks.export_events.delay().get()

    assert outcome["rows"] == 1
    assert len(_files(tmp_path)) == 1
    assert tasks.export_events.name == "learning.export_events"
    assert tasks.export_events.queue == "default"


def test_beat_runs_the_export_daily():
    entry = settings.CELERY_BEAT_SCHEDULE["learning-export-events"]
    assert entry["task"] == "learning.export_events"
    schedule = entry["schedule"]
    assert schedule.hour == {2} and schedule.minute == {15}


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_export_task(real_celery):
    InteractionFactory.create_batch(2)
    _age(60)
    lake = settings.APEX_LAKE_DIR
    before = set(_files(lake))

    outcome = tasks.export_events.delay().get(timeout=60)

    assert outcome["rows"] == 2
    (written,) = set(_files(lake)) - before
    assert str(written) == outcome["path"]
    assert pq.read_table(written).num_rows == 2
