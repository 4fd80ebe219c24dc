"""EnsembleWeights versions: proposal, the admin (compare, activate), debias."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, transaction

from accounts.models import User
from recommendations import services
from recommendations.models import EnsembleWeights

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/recommendations/ensembleweights/"


def _fit(weights: dict[str, float], value: float = 0.5) -> dict:
    return {
        "weights": weights,
        "normalisation": "zscore",
        "objective": "dr",
        "estimated_value": value,
        "estimates": {"dr": {"value": value, "low": value - 0.1, "high": value + 0.1}},
        "gate": {"threshold": 0.3},
        "fitted_on": {"source": "ml-100k", "seed": 1},
    }


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_user(
        email="admin@example.com", password="pw-for-tests-1", is_staff=True,
        is_superuser=True,
    )  # fmt: skip


def test_versions_are_numbered_and_validated() -> None:
    v1 = services.ensemble_weights_propose(fit=_fit({"sasrec": 0.6, "lightgcn": 0.4}))
    v2 = services.ensemble_weights_propose(fit=_fit({"kan": 1.0}))
    assert (v1.version, v2.version) == (1, 2)
    assert v1.status == EnsembleWeights.Status.PROPOSED
    assert v1.gate_threshold == 0.3
    with pytest.raises(ValidationError, match="sum to 1"):
        services.ensemble_weights_propose(fit=_fit({"sasrec": 0.6}))
    with pytest.raises(ValidationError, match="unknown model"):
        services.ensemble_weights_propose(fit=_fit({"nope": 1.0}))
    with pytest.raises(ValidationError, match=">= 0"):
        services.ensemble_weights_propose(fit=_fit({"sasrec": 1.5, "kan": -0.5}))


def test_only_one_active_version_at_a_time() -> None:
    v1 = services.ensemble_weights_propose(fit=_fit({"sasrec": 1.0}))
    v2 = services.ensemble_weights_propose(fit=_fit({"kan": 1.0}))
    services.ensemble_weights_activate(version=v1.version)
    services.ensemble_weights_activate(version=v2.version)
    v1.refresh_from_db()
    v2.refresh_from_db()
    assert v1.status == "retired" and v2.status == "active"
    assert v2.activated_at is not None
    v1.status = "active"
    with pytest.raises(IntegrityError), transaction.atomic():
        v1.save()


def test_activation_is_announced_to_the_serving_processes_after_commit(
    django_capture_on_commit_callbacks,
) -> None:
    from recommendations.serving import broadcast

    v1 = services.ensemble_weights_propose(fit=_fit({"sasrec": 1.0}))
    before = broadcast.current_generation() or 0
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.ensemble_weights_activate(version=v1.version)
        assert broadcast.current_generation() in (None, before)  # not before commit
    assert len(callbacks) == 1
    assert broadcast.current_generation() == before + 1


def test_admin_compare_then_activate(client, staff) -> None:
    v1 = services.ensemble_weights_propose(
        fit=_fit({"sasrec": 0.7, "lightgcn": 0.3}, 0.81)
    )
    v2 = services.ensemble_weights_propose(
        fit=_fit({"kan": 0.5, "lightgcn": 0.5}, 0.92)
    )
    services.ensemble_weights_activate(version=v1.version)
    client.force_login(staff)

    listing = client.get(CHANGELIST)
    assert listing.status_code == 200
    assert "sasrec 0.70" in listing.content.decode()

    compare = client.post(
        CHANGELIST,
        {"action": "compare_selected", "_selected_action": [v1.pk, v2.pk]},
    )
    page = compare.content.decode()
    assert compare.status_code == 200
    assert 'id="compare-versions"' in page
    assert "v1 (active)" in page and "v2 (proposed)" in page
    assert "0.810" in page or "0.8100" in page
    assert "0.9200" in page

    activated = client.post(
        CHANGELIST,
        {"action": "activate_selected", "_selected_action": [v2.pk]},
        follow=True,
    )
    assert activated.status_code == 200
    assert "Version 2 is now active" in activated.content.decode()
    v1.refresh_from_db()
    v2.refresh_from_db()
    assert (v1.status, v2.status) == ("retired", "active")


def test_admin_refuses_activating_two_at_once(client, staff) -> None:
    v1 = services.ensemble_weights_propose(fit=_fit({"sasrec": 1.0}))
    v2 = services.ensemble_weights_propose(fit=_fit({"kan": 1.0}))
    client.force_login(staff)
    response = client.post(
        CHANGELIST,
        {"action": "activate_selected", "_selected_action": [v1.pk, v2.pk]},
        follow=True,
    )
    assert "exactly one" in response.content.decode()
    assert not EnsembleWeights.objects.filter(status="active").exists()


def test_admin_add_form_numbers_the_version(client, staff) -> None:
    services.ensemble_weights_propose(fit=_fit({"sasrec": 1.0}))
    client.force_login(staff)
    response = client.post(
        f"{CHANGELIST}add/",
        {"weights": '{"kan": 0.25, "sasrec": 0.75}', "normalisation": "rank",
         "notes": "hand-tuned"},
        follow=True,
    )  # fmt: skip
    assert response.status_code == 200
    created = EnsembleWeights.objects.get(version=2)
    assert created.weights == {"kan": 0.25, "sasrec": 0.75}
    assert created.objective == "manual" and created.created_by == staff
    bad = client.post(
        f"{CHANGELIST}add/", {"weights": '{"kan": 0.5}', "normalisation": "rank"}
    )
    assert "sum to 1" in bad.content.decode()


def test_non_staff_cannot_reach_the_admin(client, user) -> None:
    client.force_login(user)
    response = client.get(CHANGELIST)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_debias_command_writes_a_proposed_version(tmp_path, capsys) -> None:
    call_command(
        "debias", "--data", "synthetic", "--members", "pop,itemknn,ease",
        "--save-model", str(tmp_path / "ensemble"),
    )  # fmt: skip
    version = EnsembleWeights.objects.get()
    assert version.status == "proposed" and version.objective == "ndcg"
    assert set(version.weights) == {"pop", "itemknn", "ease"}
    assert abs(sum(version.weights.values()) - 1) < 1e-6
    assert version.estimates["ndcg"]["low"] <= version.estimated_value
    assert {"dr", "ips", "snips"} <= set(version.estimates)  # shown beside it
    assert version.fitted_on["source"] == "synthetic"
    assert (tmp_path / "ensemble" / "members" / "ease" / "model.json").exists()
    assert "proposed ensemble weights v1" in capsys.readouterr().out
