"""``manage.py debias --from-impressions``: weights proposed from the system's
own logged slates (simulated users, position-biased clicks), and the popularity
proxy when the log is too thin."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.tests.factories import UserFactory
from catalog.tests.factories import MovieFactory
from experiments import services
from experiments.models import Impression
from learning.models import Interaction
from recommendations.engine.bandits.exploration import ExplorationConfig
from recommendations.engine.bandits.simulator import Simulator, synthetic_click_model
from recommendations.engine.data.synthetic import generate
from recommendations.models import EnsembleWeights

pytestmark = pytest.mark.django_db

# the simulator's members under the names of real ensemble members
NAMES = {"truth": "ease", "popularity": "pop", "noise": "itemknn"}


def log_simulated_slates(n_slates: int, seed: int = 0) -> Simulator:
    data = generate(users=60, items=40, interactions=900, seed=seed)
    sim = Simulator.with_members(
        synthetic_click_model(data, k=5), seed=seed, n_candidates=15, slate_size=5
    )
    movies = [MovieFactory().pk for _ in range(40)]
    user = UserFactory()
    rng = np.random.default_rng(seed)
    logging_weights = np.array([0.3, 0.4, 0.3])
    batch, users = sim.log(
        logging_weights,
        ExplorationConfig(kind="epsilon_greedy", epsilon=0.3),
        n_slates,
        rng,
    )
    clicks = []
    now = timezone.now()
    for s in range(n_slates):
        u = int(users[s])
        cand_items = sim.candidates[u]
        shown = batch.shown[s]
        rid = f"sim-{seed}-{s}"
        services.slate_record(
            request_id=rid, user_id=user.pk, surface="api:recommendations",
            items=[{"movie_id": movies[cand_items[c]], "propensity": p}
                   for c, p in zip(shown, batch.propensities[s], strict=True)],
            policy={"policy": "epsilon_greedy"},
            candidates={
                "movie_ids": [movies[i] for i in cand_items],
                "members": {NAMES[name]: sim.candidate_scores[u, :, j].tolist()
                            for j, name in enumerate(sim.names)},
            },
        )  # fmt: skip
        for k in np.flatnonzero(batch.rewards[s]):
            movie = movies[cand_items[shown[k]]]
            clicks.append(
                Interaction(
                    user=user,
                    movie_id=movie,
                    kind="click",
                    occurred_at=now,
                    source="api",
                    idempotency_key=f"{rid}-{k}",
                    request_id=rid,
                )  # fmt: skip
            )
    Interaction.objects.bulk_create(clicks)
    services.impressions_flush()
    assert Impression.objects.count() == n_slates
    return sim


def test_weights_are_proposed_from_the_impression_log(capsys) -> None:
    sim = log_simulated_slates(1500)
    call_command("debias", "--from-impressions", "--min-slates", "1000")
    version = EnsembleWeights.objects.get()
    assert version.status == "proposed" and version.objective == "dr"
    assert version.fitted_on["source"] == "impressions"
    assert version.fitted_on["slates"] == 1500
    assert set(version.weights) == {"ease", "pop", "itemknn"}
    assert abs(sum(version.weights.values()) - 1) < 1e-3
    # the member that knows the users' planted taste gets the most weight,
    # and the chosen blend is truly better than the logging blend
    assert max(version.weights, key=version.weights.get) == "ease"
    chosen = np.array([version.weights[NAMES[n]] for n in sim.names])
    assert sim.true_value(chosen) > sim.true_value(np.array([0.3, 0.4, 0.3]))
    assert version.estimates["dr"]["lower"] <= version.estimated_value
    assert "proposed ensemble weights v1" in capsys.readouterr().out


def test_a_thin_log_falls_back_to_the_popularity_proxy_and_says_so(capsys) -> None:
    log_simulated_slates(50, seed=1)
    call_command(
        "debias", "--from-impressions", "--min-slates", "1000",
        "--data", "synthetic", "--members", "pop,itemknn,ease",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "too thin (50 usable slates)" in out
    assert "falling back to the popularity proxy" in out
    version = EnsembleWeights.objects.get()
    assert version.fitted_on["source"] == "synthetic"
