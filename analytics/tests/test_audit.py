"""``manage.py audit_fairness`` on a trained artifact, the alert thresholds,
and ``GET /v1/evaluation/offline-metrics``."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.tests.factories import UserFactory
from analytics.audits import evaluate_artifact
from analytics.models import FairnessAudit, OfflineEvaluation
from billing.models import BillingAccount
from catalog.tests.factories import MovieFactory
from learning.tests.factories import InteractionFactory

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
URL = "/v1/evaluation/offline-metrics"


def test_audit_of_the_active_artifact_on_held_out_users(trained, settings):
    settings.APEX_AUDIT_MIN_GROUP_USERS = 5
    out = StringIO()
    call_command("audit_fairness", stdout=out)
    audit = FairnessAudit.objects.get()
    evaluation = OfflineEvaluation.objects.get()
    assert audit.artifact_version == evaluation.artifact_version == trained["version"]
    assert audit.users == 40 and audit.dataset == "platform-log"
    m = audit.metrics
    assert m["k"] == 10 and 0 <= m["exposure_gini"] <= 1 and 0 < m["coverage"] <= 1
    assert len(m["exposure_by_popularity"]["share"]) == 5
    assert m["calibration_kl"]["n"] == 40
    gender = m["by_group"]["gender"]
    assert {g: row["users"] for g, row in gender["groups"].items()} == {
        "female": 20, "male": 20,
    }  # fmt: skip
    assert gender["gaps"]["ndcg@10"]["gap"] >= 0
    assert m["by_group"]["occupation"]["groups"].keys() == {"student", "engineer"}
    # each member and the ensemble, with intervals
    # the ensemble and each member that kept weight
    members = set(evaluation.results) - {"ensemble"}
    assert (
        "ensemble" in evaluation.results and members and members <= {"itemknn", "ease"}
    )
    ensemble = evaluation.results["ensemble"]
    assert (
        ensemble["ndcg@10"]["low"]
        <= ensemble["ndcg@10"]["mean"]
        <= ensemble["ndcg@10"]["high"]
    )
    # planted structure: the held-out movie is in the liked genre, so the
    # model must beat a random list (10 of ~20 candidates would give ~0.5 HR)
    assert ensemble["hr@10"]["mean"] > 0.6
    assert "ensemble" in out.getvalue() and "gini" in out.getvalue()


def test_crossed_thresholds_raise_an_alert_in_the_admin(trained, settings, client):
    settings.APEX_FAIRNESS_MAX_GINI = 0.0  # any concentration at all
    settings.APEX_FAIRNESS_MIN_COVERAGE = 0.0
    audit, _ = evaluate_artifact(members=False)
    assert [a["metric"] for a in audit.alerts] == ["exposure_gini"]
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get("/admin/analytics/fairnessaudit/", follow=True)
    assert "Fairness alert" in page.content.decode()
    settings.APEX_FAIRNESS_MAX_GINI = 1.0
    calm, _ = evaluate_artifact(members=False)
    assert calm.alerts == []


def test_a_changed_log_is_refused_rather_than_audited_wrongly(trained):
    InteractionFactory(user=trained["users"][0], movie=MovieFactory())
    with pytest.raises(CommandError, match="audit_data_mismatch"):
        call_command("audit_fairness", stdout=StringIO())


def test_offline_metrics_endpoint(trained, api_client):
    staff = UserFactory(is_staff=True)
    api_client.force_authenticate(UserFactory())
    assert api_client.get(URL).status_code == 403
    api_client.force_authenticate(staff)
    missing = api_client.get(URL)
    assert missing.status_code == 404
    assert missing.json()["code"] == "no_offline_metrics"
    evaluate_artifact()
    business = UserFactory()
    BillingAccount.objects.create(user=business, plan="business", status="active")
    api_client.force_authenticate(business)
    response = api_client.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body["artifact_version"] == trained["version"]
    assert "ensemble" in body["models"] and len(body["models"]) >= 2
    assert set(body["models"]["ensemble"]["ndcg_10"]) == {"mean", "low", "high", "n"}
    assert "leave-one-out" in body["protocol"]["split"]
    assert body["manifest_metrics"]["protocol"].startswith("temporal leave-one-out")


def test_no_artifact_is_a_clear_404(api_client, settings, tmp_path):
    settings.APEX_ARTIFACTS_DIR = tmp_path / "none"
    api_client.force_authenticate(UserFactory(is_staff=True))
    response = api_client.get(URL)
    assert (
        response.status_code == 404 and response.json()["code"] == "no_active_artifact"
    )
