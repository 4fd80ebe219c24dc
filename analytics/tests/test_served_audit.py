"""The fairness audit of what was actually served (issue 15): the
personalised slates of the impression log in a period, their exposure over
the whole catalog, and click-through per demographic group."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from accounts.tests.factories import UserFactory
from analytics.audits import K, audit_served
from analytics.models import FairnessAudit
from analytics.services import fairness_audit_run
from catalog.tests.factories import GenreFactory, MovieFactory
from experiments.models import Impression
from learning.tests.factories import InteractionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def served(settings):
    """30 movies (popularity falling with the index); 10 users, the even ones
    18-24 / female, the odd ones 35-44 / male. Each user got two slates of
    the 10 most popular movies an hour ago; the even users clicked their
    first slate's third movie. One older slate and one short slate are
    served too."""
    settings.APEX_AUDIT_MIN_GROUP_USERS = 3
    drama = GenreFactory(name="Drama")
    comedy = GenreFactory(name="Comedy")
    movies = [
        MovieFactory(genres=[drama if k % 2 else comedy], rating_count=100 - k)
        for k in range(30)
    ]
    now = timezone.now()
    users = []
    for u in range(10):
        even = u % 2 == 0
        user = UserFactory(
            age_band="18_24" if even else "35_44", gender="female" if even else "male"
        )
        users.append(user)
        InteractionFactory(user=user, movie=movies[20 + u % 5], kind="rating", value=4)
        for s in range(2):
            rid = f"{u:02d}{s}".ljust(32, "a")
            Impression.objects.create(
                request_id=rid,
                user_id=user.pk,
                surface="api:recommendations" if s == 0 else "page:home:for_you",
                items=[
                    {"movie_id": m.pk, "position": k, "score": 1.0, "propensity": 1.0}
                    for k, m in enumerate(movies[:K])
                ],
                served_at=now - timedelta(hours=1),
            )
            if even and s == 0:
                InteractionFactory(
                    user=user, movie=movies[2], kind="click", request_id=rid
                )
    other = movies[K : 2 * K]
    Impression.objects.create(  # before the period
        request_id="old".ljust(32, "b"), user_id=users[0].pk,
        surface="api:recommendations",
        items=[{"movie_id": m.pk, "position": k} for k, m in enumerate(other)],
        served_at=now - timedelta(days=3),
    )  # fmt: skip
    Impression.objects.create(  # shorter than K
        request_id="short".ljust(32, "c"), user_id=users[1].pk,
        surface="api:recommendations",
        items=[{"movie_id": movies[29].pk, "position": 0}],
        served_at=now - timedelta(hours=1),
    )  # fmt: skip
    Impression.objects.create(  # not a personalised surface
        request_id="similar".ljust(32, "d"), user_id=users[1].pk,
        surface="api:similar",
        items=[{"movie_id": m.pk, "position": k} for k, m in enumerate(other)],
        served_at=now - timedelta(hours=1),
    )  # fmt: skip
    return {"movies": movies, "users": users, "now": now}


def test_the_served_slates_of_the_period_are_audited(served) -> None:
    now = served["now"]
    audit = audit_served(since=now - timedelta(hours=24), until=now)
    m = audit.metrics
    assert audit.source == FairnessAudit.Source.SERVED and audit.users == 10
    assert m["period"]["slates_served"] == 20
    assert m["period"]["slates_shorter_than_k"] == 1
    # only the 10 most popular of 30 movies were shown: a third of the catalog,
    # none from the long tail (the 80 % least popular)
    assert m["coverage"] == pytest.approx(10 / 30)
    assert m["long_tail_share"] == pytest.approx(0.4)  # movies 6..9 of 0..29
    assert m["exposure_by_popularity"]["share"][-1] > 0.5
    # half the slates were clicked: every even user's first slate
    assert m["accuracy"]["ctr"]["mean"] == pytest.approx(0.25)
    gender = m["by_group"]["gender"]
    assert gender["groups"]["female"]["ctr"]["mean"] == pytest.approx(0.5)
    assert gender["groups"]["male"]["ctr"]["mean"] == pytest.approx(0.0)
    assert gender["gaps"]["ctr"] == {"gap": 0.5, "best": "female", "worst": "male"}
    assert m["calibration_kl"]["mean"] is not None


def test_a_period_without_slates_is_a_clear_error(served) -> None:
    with pytest.raises(Exception) as exc:
        audit_served(since=served["now"] + timedelta(hours=1))
    assert exc.value.code == "no_served_slates"


def test_the_command_and_the_beat_job(served, settings, tmp_path) -> None:
    settings.APEX_ARTIFACTS_DIR = tmp_path / "no-artifacts"
    out = StringIO()
    call_command("audit_fairness", "--served", "--hours", "24", stdout=out)
    assert "20 of 20 slates, 10 users" in out.getvalue()
    with pytest.raises(CommandError, match="no_served_slates"):
        call_command("audit_fairness", "--served", "--hours", "0.01", stdout=out)

    FairnessAudit.objects.all().delete()
    result = fairness_audit_run()
    assert result["offline"]["skipped"] == "no_active_artifact"
    assert "audit_id" in result["served"]
    # the next run starts where this one ended: nothing new was served
    assert fairness_audit_run()["served"]["skipped"] == "no_served_slates"
