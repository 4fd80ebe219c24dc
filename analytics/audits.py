"""Fairness audits and offline evaluation of the active artifact.

**Offline lists** (``source=offline``, what exists today): the current
artifact version's PyTorch ensemble (what tier 1 serves) is re-scored on the
held-out users of the split it was trained with — ``model_train``'s temporal
leave-one-out over the same data (``--dataset``, default as ``train``) —
on a seeded sample of at most ``APEX_AUDIT_MAX_USERS`` users. The item
vocabulary of the data must equal the artifact's, else the audit refuses
(``audit_data_mismatch``: the log changed since training; retrain or pass
the data set it was trained on). Each member and the ensemble get the
engine's full-ranking evaluation (NDCG/HR/MRR@10 with intervals, coverage,
Gini, long tail: an ``OfflineEvaluation`` row); the ensemble's top-10 lists
get the fairness measures of ``analytics.fairness`` (a ``FairnessAudit``
row, with the alerts its thresholds raise).

**Served lists** (``source=served``, :func:`audit_served`): what users were
actually shown in a period — the personalised slates of the impression log
(``experiments.selectors.impressions``: the API's user lists, the home
page's "For you" row, the live feed), one row per slate, the first ``K``
shown items (shorter slates are left out and counted). The item space is the
whole catalog and popularity its rating counts, so coverage is the share of
the catalog that was shown. Accuracy is measured by what users did with the
slate (the events that carried its request id): ``ctr`` (any click, watch or
rating) and ``rated`` (a rating), per slate, with the same per-group
intervals and gaps as the offline audit. Calibration compares each slate
with the user's history at audit time.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from django.conf import settings
from rest_framework import status

from analytics import fairness, selectors
from analytics.errors import AnalyticsErrorCode as Code
from analytics.models import FairnessAudit, OfflineEvaluation
from apex_site.errors import ApplicationError
from catalog import selectors as catalog_selectors
from experiments import selectors as experiment_selectors
from learning import selectors as learning_selectors
from recommendations import selectors as rec_selectors

logger = logging.getLogger(__name__)

K = 10
SUMMARY_METRICS = ("ndcg@10", "hr@10", "mrr@10")


def thresholds() -> dict[str, float]:
    return {
        "max_gini": settings.APEX_FAIRNESS_MAX_GINI,
        "min_coverage": settings.APEX_FAIRNESS_MIN_COVERAGE,
        "max_ndcg_gap": settings.APEX_FAIRNESS_MAX_NDCG_GAP,
        "max_calibration_kl": settings.APEX_FAIRNESS_MAX_CALIBRATION_KL,
    }


def _subtask(task: Any, max_users: int, seed: int) -> Any:
    from recommendations.engine.data.splits import EvalTask

    n = len(task)
    if n <= max_users:
        return task
    idx = np.sort(np.random.default_rng(seed).choice(n, size=max_users, replace=False))
    return EvalTask(
        users=task.users[idx],
        histories=[task.histories[i] for i in idx],
        exclude=task.exclude[idx],
        targets=task.targets[idx],
    )


def _item_genres(data: Any, item_ids: list[Any]) -> dict[int, list[str]]:
    """``{item index: genres}`` from the data's item features, else the catalog."""
    features = data.item_features
    if features is not None and "genres" in features:
        return {
            int(i): list(g) if isinstance(g, (list, tuple, np.ndarray)) else []
            for i, g in features["genres"].items()
        }
    by_movie = catalog_selectors.movie_genre_names(movie_ids=[int(i) for i in item_ids])
    return {i: by_movie.get(int(m), []) for i, m in enumerate(item_ids)}


def _summary(result: Any) -> dict[str, Any]:
    return {
        **{
            m: fairness._finite(v)
            for m, v in result.summary()["full"].items()
            if m in SUMMARY_METRICS
        },
        "coverage": result.beyond.get("coverage"),
        "gini": result.beyond.get("gini"),
        "long_tail_share": result.beyond.get("long_tail_share"),
        "users": len(result.users),
        "scoring_seconds": round(result.scoring_seconds, 3),
    }


def evaluate_artifact(
    *,
    dataset: str | None = None,
    max_users: int | None = None,
    seed: int = 0,
    members: bool = True,
) -> tuple[FairnessAudit, OfflineEvaluation]:
    """Audit and evaluate the current artifact on held-out users (module
    docstring); stores and returns both rows."""
    from recommendations.engine.data.splits import make_split
    from recommendations.engine.evaluation.beyond import top_k
    from recommendations.engine.evaluation.evaluator import evaluate

    started = time.perf_counter()
    artifact = rec_selectors.active_artifact()
    if artifact is None:
        raise ApplicationError(
            "There is no current artifact version to audit (run `manage.py train`).",
            code=Code.NO_ACTIVE_ARTIFACT,
            status_code=status.HTTP_404_NOT_FOUND,
        )
    model = rec_selectors.artifact_ensemble(path=artifact["path"])
    item_ids = [int(i) for i in rec_selectors.artifact_item_ids(path=artifact["path"])]
    data = rec_selectors.evaluation_interactions(dataset=dataset)
    if [int(i) for i in data.items.ids] != item_ids:
        raise ApplicationError(
            "The data's items differ from the artifact's: audit on the data set it "
            "was trained on, or retrain.",
            code=Code.AUDIT_DATA_MISMATCH,
            detail={"data_items": int(data.n_items), "artifact_items": len(item_ids)},
        )
    split = make_split(data, "loo")
    task = _subtask(split.test_task(), max_users or settings.APEX_AUDIT_MAX_USERS, seed)
    item_counts = split.train.item_counts()

    scorers: dict[str, Any] = {"ensemble": model}
    if members:
        scorers.update({name: model.members[name] for name in model.active_members()})
    results: dict[str, Any] = {}
    ensemble_result = None
    for name, scorer in scorers.items():
        result = evaluate(
            scorer, task, item_counts=item_counts, keep_scores=name == "ensemble"
        )
        results[name] = _summary(result)
        if name == "ensemble":
            ensemble_result = result
    assert ensemble_result is not None and ensemble_result.scores is not None
    exclude = task.exclude.toarray().astype(bool)
    recommended = top_k(ensemble_result.scores, exclude, K)

    user_ids = [int(u) for u in data.users.id_of(task.users)]
    groups_of = (
        selectors.user_groups(user_ids=user_ids) if data.name == "platform-log" else {}
    )
    unknown = dict.fromkeys(selectors.DIMENSIONS, selectors.UNKNOWN)
    user_groups = {
        d: [groups_of.get(u, unknown)[d] for u in user_ids]
        for d in selectors.DIMENSIONS
    }
    metrics = fairness.audit_lists(
        recommended=recommended,
        histories=[h.items.tolist() for h in task.histories],
        item_counts=item_counts,
        item_genres=_item_genres(data, item_ids),
        accuracy={m: ensemble_result.full[m] for m in ("ndcg@10", "hr@10")},
        user_groups=user_groups,
        min_group_users=settings.APEX_AUDIT_MIN_GROUP_USERS,
    )
    alerts = fairness.alerts_for(metrics, thresholds())
    seconds = time.perf_counter() - started
    snapshot = artifact["manifest"].get("data_snapshot") or {}
    protocol = {
        "split": "temporal leave-one-out (model_train's), test events",
        "ranking": "full ranking over every item except the user's history, "
        "pessimistic ties",
        "users": len(task),
        "users_sampled_from": len(split.test_task()),
        "seed": seed,
        "k": K,
        "dataset": data.name,
    }
    evaluation = OfflineEvaluation.objects.create(
        artifact_version=artifact["version"],
        protocol=protocol,
        data_snapshot=snapshot if isinstance(snapshot, dict) else {"source": snapshot},
        results=results,
    )
    audit = FairnessAudit.objects.create(
        source=FairnessAudit.Source.OFFLINE,
        artifact_version=artifact["version"],
        dataset=data.name,
        users=len(task),
        metrics=metrics,
        alerts=alerts,
        seconds=seconds,
    )
    logger.info(
        "fairness audit stored",
        extra={
            "audit_id": audit.pk,
            "artifact_version": artifact["version"],
            "users": len(task),
            "alerts": len(alerts),
            "seconds": round(seconds, 1),
        },
    )
    return audit, evaluation


SERVED_SURFACES = ("api:recommendations", "page:home:for_you", "page:home:live")


def audit_served(
    *,
    since: Any,
    until: Any = None,
    max_slates: int | None = None,
    seed: int = 0,
) -> FairnessAudit:
    """Audit the personalised slates served in ``[since, until)`` (module
    docstring); stores and returns the audit row. ``max_slates`` (default
    ``APEX_AUDIT_MAX_USERS``) bounds the work: a seeded sample of slates."""
    started = time.perf_counter()
    rows = list(
        experiment_selectors.impressions(
            since=since, until=until, surfaces=SERVED_SURFACES
        )
    )
    short = [r for r in rows if len(r.items) < K]
    rows = [r for r in rows if len(r.items) >= K]
    if not rows:
        raise ApplicationError(
            f"No personalised slate of at least {K} items was served in the period.",
            code=Code.NO_SERVED_SLATES,
            status_code=status.HTTP_404_NOT_FOUND,
            detail={"since": str(since), "until": str(until), "shorter": len(short)},
        )
    limit = max_slates or settings.APEX_AUDIT_MAX_USERS
    served_count = len(rows)
    if len(rows) > limit:
        keep = np.sort(
            np.random.default_rng(seed).choice(len(rows), size=limit, replace=False)
        )
        rows = [rows[i] for i in keep]
    slates = experiment_selectors.slates_with_rewards(rows)

    counts_by_movie = catalog_selectors.movie_rating_counts()
    shown = {i for s in slates for i in s.movie_ids[:K]}
    movie_ids = sorted(set(counts_by_movie) | shown)
    index = {m: k for k, m in enumerate(movie_ids)}
    item_counts = np.asarray([counts_by_movie.get(m, 0) for m in movie_ids])
    recommended = np.asarray([[index[m] for m in s.movie_ids[:K]] for s in slates])

    user_ids = sorted({s.user_id for s in slates if s.user_id is not None})
    histories_by_user = {
        u: [
            index[m]
            for m in learning_selectors.user_history_ids(user_id=u)
            if m in index
        ]
        for u in user_ids
    }
    genre_names = catalog_selectors.movie_genre_names(movie_ids=movie_ids)
    item_genres = {index[m]: g for m, g in genre_names.items() if m in index}
    groups_of = selectors.user_groups(user_ids=user_ids)
    unknown = dict.fromkeys(selectors.DIMENSIONS, selectors.UNKNOWN)
    metrics = fairness.audit_lists(
        recommended=recommended,
        histories=[histories_by_user.get(s.user_id, []) for s in slates],
        item_counts=item_counts,
        item_genres=item_genres,
        accuracy={
            "ctr": np.asarray([float(s.clicked) for s in slates]),
            "rated": np.asarray(
                [float(any(r is not None for r in s.ratings)) for s in slates]
            ),
        },
        user_groups={
            d: [groups_of.get(s.user_id, unknown)[d] for s in slates]  # type: ignore[arg-type]
            for d in selectors.DIMENSIONS
        },
        min_group_users=settings.APEX_AUDIT_MIN_GROUP_USERS,
    )
    metrics["period"] = {
        "since": since.isoformat(),
        "until": until.isoformat() if until is not None else None,
        "slates_served": served_count,
        "slates_audited": len(slates),
        "slates_shorter_than_k": len(short),
        "surfaces": list(SERVED_SURFACES),
        "users": len(user_ids),
    }
    alerts = fairness.alerts_for(metrics, thresholds())
    seconds = time.perf_counter() - started
    versions = sorted({str(s.weights_version) for s in slates if s.weights_version})
    artifact = rec_selectors.active_artifact()
    audit = FairnessAudit.objects.create(
        source=FairnessAudit.Source.SERVED,
        artifact_version=artifact["version"] if artifact else "",
        dataset=f"impressions (weights {', '.join(versions)})"
        if versions
        else "impressions",
        users=len(user_ids),
        metrics=metrics,
        alerts=alerts,
        seconds=seconds,
    )
    logger.info(
        "served fairness audit stored",
        extra={"audit_id": audit.pk, "slates": len(slates), "alerts": len(alerts)},
    )
    return audit
