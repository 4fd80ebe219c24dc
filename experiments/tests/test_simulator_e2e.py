"""One simulator run end to end: simulated users are assigned to an admin-
defined experiment, served slates with the variant's exploration, their
position-biased clicks go through the real events API (``POST /v1/events``
with the slate's request id), the impression log is flushed, and the join,
the per-variant results and the off-policy input all see exactly the
simulated clicks."""

from __future__ import annotations

import numpy as np
import pytest

from accounts.tests.factories import UserFactory
from catalog.tests.factories import MovieFactory
from experiments import selectors, services
from experiments.models import Experiment, Impression, Variant
from recommendations.engine.bandits.exploration import ExplorationConfig
from recommendations.engine.bandits.simulator import Simulator, synthetic_click_model
from recommendations.engine.data.synthetic import generate

pytestmark = pytest.mark.django_db

WEIGHTS = {"good": np.array([0.8, 0.2, 0.0]), "worse": np.array([0.0, 0.3, 0.7])}


def test_a_simulated_experiment_runs_through_the_events_api(
    api_client, django_capture_on_commit_callbacks
) -> None:
    exp = Experiment.objects.create(key="sim-e2e", name="sim")
    Variant.objects.create(experiment=exp, key="good", position=0, share=0.5,
                           exploration="epsilon_greedy", epsilon=0.2)  # fmt: skip
    Variant.objects.create(experiment=exp, key="worse", position=1, share=0.5)
    services.experiment_start(experiment=exp)
    selectors.running_experiments_forget()

    data = generate(users=12, items=30, interactions=240, seed=3)
    sim = Simulator.with_members(
        synthetic_click_model(data, k=5, ceiling=0.9), seed=3, n_candidates=12,
        slate_size=5,
    )  # fmt: skip
    movies = [MovieFactory().pk for _ in range(30)]
    users = [UserFactory() for _ in range(sim.n_users)]
    rng = np.random.default_rng(0)
    simulated_clicks: dict[str, list[int]] = {}
    for s in range(240):
        u = int(rng.integers(0, sim.n_users))
        user = users[u]
        assignment = selectors.assignment_for(user_id=user.pk)
        assert assignment is not None
        shown, prop = sim.serve(
            u, WEIGHTS[assignment.variant],
            assignment.exploration or ExplorationConfig(), rng,
        )  # fmt: skip
        items = sim.candidates[u, shown]
        rid = f"sim-{s}"
        assert services.slate_record(
            request_id=rid, user_id=user.pk, surface="api:recommendations",
            items=[{"movie_id": movies[i], "propensity": p, "score": 0.0}
                   for i, p in zip(items, prop, strict=True)],
            policy=assignment.policy(weights_version=1),
        )  # fmt: skip
        clicks = sim.model.clicks(u, items, rng)
        simulated_clicks[rid] = clicks.astype(int).tolist()
        events = [
            {"kind": "click", "movie_id": movies[items[k]], "request_id": rid,
             "idempotency_key": f"{rid}-{k}"}
            for k in np.flatnonzero(clicks)
        ]  # fmt: skip
        if events:
            api_client.force_authenticate(user)
            with django_capture_on_commit_callbacks(execute=True):
                r = api_client.post("/v1/events", {"events": events}, format="json")
            assert r.status_code == 202, r.json()
    services.impressions_flush()

    assert Impression.objects.count() == 240
    slates = selectors.slates_with_rewards(selectors.impressions(experiment="sim-e2e"))
    assert {s.request_id: s.clicks for s in slates} == simulated_clicks
    total = sum(map(sum, simulated_clicks.values()))
    assert total > 20  # the run did produce clicks to join

    results = selectors.experiment_results(experiment=exp)
    by_key = {row["variant"].key: row for row in results["variants"]}
    assert by_key["good"]["slates"] + by_key["worse"]["slates"] == 240
    for key in ("good", "worse"):
        mine = [s for s in slates if s.variant == key]
        assert by_key[key]["ctr"]["mean"] == pytest.approx(
            np.mean([any(s.clicks) for s in mine])
        )
    explored = Impression.objects.filter(variant="good")
    assert {r.policy for r in explored} == {"epsilon_greedy"}
    assert any(i["propensity"] < 0.5 for r in explored for i in r.items)
    assert {r.policy for r in Impression.objects.filter(variant="worse")} == {"greedy"}
