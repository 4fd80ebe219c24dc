"""The staff results page: per-variant metrics, intervals and the stopping rule."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.tests.factories import UserFactory
from experiments import selectors
from experiments.models import Experiment, Impression, Variant
from learning.models import Interaction

pytestmark = pytest.mark.django_db


@pytest.fixture
def experiment():
    exp = Experiment.objects.create(key="ab", name="A vs B", status="running")
    Variant.objects.create(experiment=exp, key="a", position=0, share=0.5)
    Variant.objects.create(experiment=exp, key="b", position=1, share=0.5)
    return exp


def log(exp_key, variant, n, clicked, user, movie):
    now = timezone.now()
    for i in range(n):
        rid = f"{variant}-{i}"
        Impression.objects.create(
            request_id=rid, user=user, surface="page:home", experiment=exp_key,
            variant=variant, items=[{"movie_id": movie.pk, "position": 0, "score": 1.0,
                                     "propensity": 1.0}], served_at=now,
        )  # fmt: skip
        if i < clicked:
            Interaction.objects.create(
                user=user, movie=movie, kind="click", occurred_at=now, source="web",
                idempotency_key=f"k-{rid}", request_id=rid,
            )  # fmt: skip


def test_metrics_and_decision(experiment) -> None:
    from catalog.tests.factories import MovieFactory

    user, movie = UserFactory(), MovieFactory()
    log("ab", "a", 400, 40, user, movie)  # 10 %
    log("ab", "b", 400, 120, user, movie)  # 30 %
    out = selectors.experiment_results(experiment=experiment)
    a, b = out["variants"]
    assert (a["slates"], b["slates"]) == (400, 400)
    assert a["ctr"]["mean"] == pytest.approx(0.10) and b["ctr"][
        "mean"
    ] == pytest.approx(0.30)
    assert a["ctr"]["lower"] < 0.10 < a["ctr"]["upper"]
    assert b["rank"]["mean"] == pytest.approx(1.0)
    (cmp,) = out["comparisons"]
    assert cmp["result"].decision == "B"
    assert cmp["result"].lower > 0


def test_staff_see_the_page_and_others_do_not(client, experiment) -> None:
    staff = UserFactory(is_staff=True)
    member = UserFactory()
    client.force_login(member)
    assert client.get("/experiments/ab/results").status_code == 302
    client.force_login(staff)
    response = client.get("/experiments/ab/results")
    assert response.status_code == 200
    assert b'data-variant="b"' in response.content
    assert client.get("/experiments/").status_code == 200
    assert client.get("/experiments/nope/results").status_code == 404
