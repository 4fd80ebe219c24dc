"""Private releases: contribution bounding, the noise OpenDP promises, the
budget ledger's refusal and its cached repeat."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from analytics import privacy, services
from analytics.models import PrivacyBudget, PrivacyRelease
from analytics.tests.factories import small_log
from apex_site.errors import ApplicationError

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)


def test_it_cuts_each_user_to_the_bound_and_keeps_small_users_whole():
    records = [(1, f"k{i % 3}") for i in range(50)] + [(2, "k0"), (2, "k1")]
    kept, dropped = privacy.bound_contributions(records, max_contributions=5, seed=7)
    assert len(kept) == 7 and dropped == 45
    assert kept[-2:] == ["k0", "k1"]  # user 2 untouched
    again, _ = privacy.bound_contributions(records, max_contributions=5, seed=7)
    assert again == kept  # seeded: the same records on a rerun


def test_the_measurement_spends_exactly_epsilon_for_the_bound():
    measurement, scale = privacy.count_measurement(
        ["a", "b"], epsilon=0.5, max_contributions=20
    )
    assert scale == 40.0
    assert measurement.map(20) == pytest.approx(0.5)
    # one user more than the bound would cost more: the bound is what is paid for
    assert measurement.map(21) > 0.5


def test_every_public_key_is_released_even_with_no_record():
    out = privacy.noisy_counts(
        [(1, "a")], keys=["a", "b", "c"], epsilon=1e6, max_contributions=1
    )
    assert out.keys == ["a", "b", "c"]
    assert out.counts == [1, 0, 0]  # scale 1e-6: no visible noise


def test_noise_has_the_stated_scale_on_average():
    # 2,000 keys of true count 0: the noise's mean absolute value matches the
    # discrete Laplace of the stated scale (exact expectation, 5 % tolerance)
    out = privacy.noisy_counts(
        [], keys=[str(i) for i in range(2000)], epsilon=1.0, max_contributions=3
    )
    scale = out.scale
    k = np.arange(-400, 401)
    expected = (np.abs(k) * privacy.discrete_laplace_pmf(k, scale)).sum()
    assert np.mean(np.abs(out.counts)) == pytest.approx(expected, rel=0.08)


@pytest.mark.django_db
def test_a_release_counts_bounded_contributions_per_group_and_genre(settings):
    settings.APEX_DP_MAX_CONTRIBUTIONS = 4
    settings.APEX_DP_EPSILON_CAP = 1e7  # epsilon 1e6: noise of scale 4e-6
    log = small_log(heavy_events=40)
    answer = services.dp_release(
        release="genre_counts", dimension="age_band", epsilon=1e6, now=NOW
    )
    groups = {g["group"]: g["counts"] for g in answer.release.result["groups"]}
    assert set(groups) == {
        "under_18", "18_24", "25_34", "35_44", "45_54", "55_plus", "unknown"
    }  # fmt: skip
    assert groups["18_24"] == {"Comedy": 0, "Drama": 2}
    # heavy touched 4 movies = 5 (user, genre) records, cut to 4
    assert sum(groups["25_34"].values()) == 4
    assert groups["unknown"] == {"Comedy": 1, "Drama": 0}
    assert answer.release.result["records_dropped"] == 1
    assert log["heavy"].occupation == "astronaut"


@pytest.mark.django_db
def test_an_unlisted_occupation_counts_as_other(settings):
    settings.APEX_DP_EPSILON_CAP = 1e7
    small_log()
    answer = services.dp_release(
        release="top_movies", dimension="occupation", epsilon=1e6, n=2, now=NOW
    )
    groups = {g["group"]: g["movies"] for g in answer.release.result["groups"]}
    assert "astronaut" not in groups
    assert [m["title"] for m in groups["student"]] == ["D1", "D2"]
    assert groups["other"][0]["count"] >= 1  # heavy, as "other"


@pytest.mark.django_db
def test_the_same_query_is_answered_from_its_release_and_spends_nothing():
    small_log()
    first = services.dp_release(
        release="genre_counts", dimension="gender", epsilon=0.5, now=NOW
    )
    second = services.dp_release(
        release="genre_counts", dimension="gender", epsilon=0.5, now=NOW
    )
    assert not first.cached and second.cached
    assert second.release.pk == first.release.pk
    assert second.release.result == first.release.result
    budget = PrivacyBudget.objects.get(period="2026-12")
    assert budget.epsilon_spent == pytest.approx(0.5)
    # another epsilon is another query: fresh noise, charged
    third = services.dp_release(
        release="genre_counts", dimension="gender", epsilon=0.25, now=NOW
    )
    assert not third.cached
    budget.refresh_from_db()
    assert budget.epsilon_spent == pytest.approx(0.75)


@pytest.mark.django_db
def test_it_refuses_a_release_beyond_the_budget_and_spends_nothing(settings):
    settings.APEX_DP_EPSILON_CAP = 1.0
    small_log()
    services.dp_release(
        release="genre_counts", dimension="gender", epsilon=0.75, now=NOW
    )
    with pytest.raises(ApplicationError) as refused:
        services.dp_release(
            release="genre_counts", dimension="age_band", epsilon=0.5, now=NOW
        )
    assert refused.value.code == "privacy_budget_exhausted"
    assert refused.value.status_code == 409
    assert refused.value.detail["epsilon_left"] == pytest.approx(0.25)
    assert PrivacyRelease.objects.count() == 1
    budget = PrivacyBudget.objects.get(period="2026-12")
    assert budget.epsilon_spent == pytest.approx(0.75)
    # the cached repeat still answers once the budget is spent
    again = services.dp_release(
        release="genre_counts", dimension="gender", epsilon=0.75, now=NOW
    )
    assert again.cached
    # and a new month has a new budget
    fresh = services.dp_release(
        release="genre_counts",
        dimension="age_band",
        epsilon=0.5,
        now=datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert not fresh.cached and fresh.release.budget.period == "2027-01"
