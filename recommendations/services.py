"""Writes and use cases of the recommendations app.

- the live feed: ``feed_refresh`` (recompute a user's feed and push it to
  their open tabs; enqueued by the ``learning.signals.interaction_recorded``
  receiver connected in ``RecommendationsConfig.ready``) and ``feed_push``;
- ensemble weights: ``ensemble_weights_propose`` / ``_activate`` (versions
  in the database), ``ensemble_weights_apply`` (the one place an engine is
  re-weighted with a version: the serving runtime and the admin API) and
  ``ensemble_weights_serve`` (the admin API's reload);
- training: ``model_train`` (``manage.py train``, the Celery task and the
  periodic retrain).

Everything is published after the transaction that produced it commits.
"""

from __future__ import annotations

import logging
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone

from apex_site.channel_sends import group_send
from apex_site.errors import ApplicationError, ErrorCode
from catalog import selectors as catalog_selectors
from experiments import selectors as experiment_selectors
from experiments import services as experiment_services
from learning import selectors as learning_selectors
from recommendations import selectors
from recommendations.errors import RecommendationsErrorCode as Code
from recommendations.models import EnsembleWeights
from recommendations.results import FeedResult, FeedRow
from recommendations.serving import broadcast

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------ live feed
def feed_group_name(user_id: int) -> str:
    return f"feed.user.{user_id}"


def feed_tab_opened(*, user_id: int) -> None:
    """A feed socket opened: count it, so that events refresh this user's
    feed (``receivers.on_events_applied``); nobody's feed is recomputed for
    a push that no tab would receive."""
    key = selectors.TABS_KEY.format(user_id=user_id)
    try:
        cache.add(key, 0, timeout=selectors.TABS_TTL_S)
        cache.incr(key)
        cache.touch(key, selectors.TABS_TTL_S)
    except ValueError:  # the cache is away (it wrote nothing): nothing to count
        logger.warning("feed tab not counted", extra={"user_id": user_id})


def feed_tab_seen(*, user_id: int) -> None:
    """A tab's keep-alive ping: its count outlives ``TABS_TTL_S`` again."""
    key = selectors.TABS_KEY.format(user_id=user_id)
    if not cache.touch(key, selectors.TABS_TTL_S):
        cache.add(key, 1, timeout=selectors.TABS_TTL_S)  # lapsed while open


def feed_tab_closed(*, user_id: int) -> None:
    """A feed socket closed; the last one takes the count away."""
    key = selectors.TABS_KEY.format(user_id=user_id)
    try:
        if cache.decr(key) <= 0:
            cache.delete(key)
    except ValueError:  # lapsed already
        pass


def feed_push(*, user_id: int, payload: dict) -> None:
    """Send a fresh feed to every open tab of the user, after the transaction
    that produced it commits (a rolled-back change is never announced)."""

    def send() -> None:
        group_send(
            feed_group_name(user_id), {"type": "feed.update", "payload": payload}
        )

    transaction.on_commit(send)


def account_push(*, user_id: int, payload: dict[str, Any]) -> None:
    """Tell the user's open tabs that their plan changed (the same per-user
    channel as the feed; the billing page reloads its plan panel)."""

    def send() -> None:
        group_send(
            feed_group_name(user_id), {"type": "billing.update", "payload": payload}
        )

    transaction.on_commit(send)


def _movie_url(movie_id: int, request_id: str | None) -> str:
    url = reverse("catalog:movie", args=[movie_id])
    return f"{url}?rid={request_id}" if request_id else url


def feed_payload(result: FeedResult) -> dict[str, Any]:
    """A feed as plain JSON for the websocket."""
    meta = result.meta
    return {
        "items": [
            {
                "id": item.movie.pk,
                "title": item.movie.title,
                "year": item.movie.year,
                "score": item.score,
                "reason": item.reason,
                "url": _movie_url(item.movie.pk, result.request_id),
                "poster_url": catalog_selectors.poster_url(item.movie),
            }
            for item in result.items
        ],
        "meta": {
            "tier": meta.tier,
            "fallback": meta.fallback,
            "fallback_reason": meta.fallback_reason,
            "gate_fired": meta.gate_fired,
            "scorer": meta.scorer,
            "artifact_version": meta.artifact_version,
        },
        "request_id": result.request_id,
    }


# ------------------------------------------------------------------ slates
def _slate(
    result: FeedResult, *, user_id: int | None, surface: str, assignment: Any
) -> tuple[FeedResult, dict[str, Any]]:
    """``result`` with a new ``request_id``, and the slate that logs it
    (``experiments.services.slate_record``'s arguments)."""
    request_id = uuid.uuid4().hex
    propensities = result.propensities or [1.0] * len(result.items)
    slate = {
        "request_id": request_id,
        "user_id": user_id,
        "surface": surface,
        "items": [
            {"movie_id": item.movie.pk, "score": item.score, "propensity": p}
            for item, p in zip(result.items, propensities, strict=True)
        ],
        "policy": {
            "weights_version": result.meta.weights_version,
            "experiment": assignment.experiment if assignment else "",
            "variant": assignment.variant if assignment else "",
            "policy": result.meta.policy,
        },
    }
    if result.candidates:
        slate["candidates"] = {
            "movie_ids": [int(i) for i in result.candidates["item_ids"]],
            "members": result.candidates["members"],
        }
    return replace(result, request_id=request_id, candidates=None), slate


def slate_log(
    *,
    result: FeedResult,
    user_id: int | None,
    surface: str,
    assignment: Any = None,
) -> FeedResult:
    """Record ``result`` as one slate of the impression log
    (``experiments.services.slate_record``: one Redis ``RPUSH``, never
    raises) and return it with its ``request_id``, which the response or the
    page links carry so that the events naming it are joined to the slate.

    ``assignment``: the user's experiment variant
    (``experiments.selectors.Assignment``) when ``result`` was served with it;
    the slate then names the experiment and the variant. The weights version
    and the policy logged are what ``result.meta`` says was served.
    """
    result, slate = _slate(
        result, user_id=user_id, surface=surface, assignment=assignment
    )
    experiment_services.slate_record(**slate)
    return result


PENDING_SLATE_KEY = "recommendations:pending-slate:{}"
PENDING_SLATE_SECONDS = 300


def feed_shown(*, user_id: int, request_id: str) -> bool:
    """A tab of ``user_id`` drew the live feed ``request_id``: log its slate
    now (a push nobody sees is never logged). Once per push, whatever the
    number of tabs; ``False`` for an unknown or expired push, or another
    user's."""
    key = PENDING_SLATE_KEY.format(request_id)
    slate = cache.get(key)
    if slate is None or slate.get("user_id") != user_id:
        return False
    if not cache.delete(key):  # another tab logged it first
        return False
    return experiment_services.slate_record(**slate)


def user_feed(
    *,
    user_id: int,
    surface: str,
    n: int = selectors.DEFAULT_N,
    diversity: float | None = None,
    exclude_seen: bool = True,
    explain: bool = True,
    shown: bool = True,
) -> FeedResult:
    """The user's list as their experiment variant serves it (weights
    version, diversity, exploration: ``experiments.selectors.assignment_for``),
    logged as one slate (:func:`slate_log`). ``shown=False``: the list is not
    on a screen yet (the live push); its slate waits until a tab says it drew
    it (:func:`feed_shown`). ``meta.timings_ms["experiment"]`` is what the
    assignment and the log cost."""
    started = time.perf_counter()
    assignment = experiment_selectors.assignment_for(user_id=user_id)
    if assignment is not None and diversity is None:
        diversity = assignment.diversity
    experiment_ms = 1e3 * (time.perf_counter() - started)
    result = selectors.feed_for(
        user_id=user_id, n=n, diversity=diversity, exclude_seen=exclude_seen,
        explain=explain,
        weights_version=assignment.weights_version if assignment else None,
        exploration=assignment.exploration if assignment else None,
        member_scores=random.random() < settings.APEX_IMPRESSIONS_CANDIDATES_SHARE,
    )  # fmt: skip
    started = time.perf_counter()
    result, slate = _slate(
        result, user_id=user_id, surface=surface, assignment=assignment
    )
    if shown:
        experiment_services.slate_record(**slate)
    else:
        cache.set(
            PENDING_SLATE_KEY.format(result.request_id), slate, PENDING_SLATE_SECONDS
        )
    experiment_ms += 1e3 * (time.perf_counter() - started)
    timings = {**result.meta.timings_ms, "experiment": round(experiment_ms, 3)}
    return replace(result, meta=replace(result.meta, timings_ms=timings))


def _rows_logged(
    rows: list[FeedRow], *, user_id: int | None, page: str, assignment: Any = None
) -> list[FeedRow]:
    """Each row that shows movies logged as one slate (``page:<page>:<row>``);
    only the "For you" row is served as the variant, so only it names
    ``assignment``."""
    return [
        replace(
            row,
            result=slate_log(
                result=row.result,
                user_id=user_id,
                surface=f"page:{page}:{row.key}",
                assignment=assignment if row.key == "for_you" else None,
            ),
        )  # fmt: skip
        if row.result.items
        else row
        for row in rows
    ]


def home_rows_logged(*, user_id: int) -> list[FeedRow]:
    """The signed-in home page's rows, the "For you" row served as the
    user's experiment variant, each row logged as a slate
    (``page:home:<row>``)."""
    assignment = experiment_selectors.assignment_for(user_id=user_id)
    rows = selectors.home_rows(
        user_id=user_id,
        weights_version=assignment.weights_version if assignment else None,
        exploration=assignment.exploration if assignment else None,
    )
    return _rows_logged(rows, user_id=user_id, page="home", assignment=assignment)


def movie_rows_logged(*, movie_id: int, user_id: int | None) -> list[FeedRow]:
    """The movie page's rows, each logged as a slate (``page:movie:<row>``)."""
    return _rows_logged(
        selectors.movie_page_rows(movie_id), user_id=user_id, page="movie"
    )


CAUSE_VERBS = {
    "rating": "rated",
    "click": "opened",
    "watch": "watched",
    "watchlist": "changed your watchlist with",
}


def feed_cause(*, user_id: int, event_id: int | None = None) -> dict[str, Any] | None:
    """What a refresh of the user's feed follows, for the page's note
    ("Updated after you rated Heat"): the user's newest applied positive
    event, or ``event_id`` where that one is newer; ``None`` for neither."""
    event = learning_selectors.newest_applied_positive_event(user_id=user_id)
    if event_id and (event is None or event["event_id"] < event_id):
        summary = learning_selectors.event_summary(event_id=event_id)
        event = summary and {**summary, "event_id": event_id}
    if event is None:
        return None
    title = catalog_selectors.movie_titles(movie_ids=[event["movie_id"]]).get(
        event["movie_id"], "a movie"
    )
    verb = CAUSE_VERBS.get(event["kind"], "used")
    return {
        "event_id": event["event_id"],
        "kind": event["kind"],
        "movie_id": event["movie_id"],
        "title": title,
        "note": f"Updated after you {verb} {title}",
    }


def feed_refresh(
    *, user_id: int, event_id: int | None = None, n: int = selectors.ROW_SIZE
) -> dict[str, Any]:
    """Recompute the user's feed from their current history and push it to
    their open tabs, with its ``cause`` (``feed_cause``: the newest applied
    positive event, which the feed covers with every older one). Never raises
    on a serving failure (the selectors serve the database fallback), so a
    retried task cannot loop on a broken model.
    """
    payload = feed_payload(
        user_feed(user_id=user_id, n=n, surface="page:home:live", shown=False)
    )
    payload["cause"] = feed_cause(user_id=user_id, event_id=event_id)
    payload["meta"]["computed_at"] = timezone.now().isoformat()
    feed_push(user_id=user_id, payload=payload)
    logger.info(
        "feed refreshed",
        extra={"user_id": user_id, "fallback": payload["meta"]["fallback"]},
    )
    return payload


# ------------------------------------------------------------------ online KAN
ONLINE_KICK_KEY = "recommendations:online-learn-kick"
ONLINE_KICK_TTL_S = 5
ONLINE_TAKE = 2000  # events per learning pass
# a kicked task starts this much later and takes what gathered meanwhile:
# at most a few learning tasks a second however many batches are applied
ONLINE_GATHER_S = 0.5


def online_learn_submit(*, event_ids: list[int]) -> None:
    """Hand applied events to the online KAN: append them to the inbox and
    enqueue one ``recommendations.online_learn``, ``ONLINE_GATHER_S`` later,
    unless one is waiting (the task deletes the key before it takes, so
    events appended after that kick a new one). Never raises: a lost
    hand-off costs the online model those events, not the caller its
    batch."""
    from recommendations.online_inbox import get_online_inbox
    from recommendations.tasks import online_learn

    try:
        get_online_inbox().push(event_ids)
        if not cache.add(ONLINE_KICK_KEY, 1, timeout=ONLINE_KICK_TTL_S):
            return
        online_learn.apply_async(countdown=ONLINE_GATHER_S)
    except Exception:  # noqa: BLE001 - see the docstring
        logger.warning(
            "could not hand events to the online learner",
            extra={"events": len(event_ids)},
            exc_info=True,
        )


def online_learn_pending() -> dict[str, Any]:
    """Learn from everything in the inbox (the task's body), a pass per
    ``ONLINE_TAKE`` events; the passes' reports summed."""
    from recommendations import online
    from recommendations.online_inbox import get_online_inbox

    cache.delete(ONLINE_KICK_KEY)  # before taking: see online_learn_submit
    inbox = get_online_inbox()
    total: dict[str, Any] = {"passes": 0, "events": 0}
    while event_ids := inbox.take(ONLINE_TAKE):
        report = online.online_learn(event_ids=event_ids)
        total["passes"] += 1
        total["events"] += report.get("events", 0)
        if "skipped" in report:
            total["skipped"] = report["skipped"]
        if report.get("published"):
            total["published"] = report["published"]
        if report.get("rolled_back"):
            total["rolled_back"] = total.get("rolled_back", 0) + 1
    return total


# ------------------------------------------------------------------ weights
@transaction.atomic
def ensemble_weights_propose(
    *, fit: dict[str, Any], created_by: Any = None, notes: str = ""
) -> EnsembleWeights:
    """Store a weight fit (``fit_ensemble_weights``' output) as a proposed version."""
    last = EnsembleWeights.objects.select_for_update().aggregate(v=Max("version"))["v"]
    gate = fit.get("gate") or {}
    weights = EnsembleWeights(
        version=(last or 0) + 1,
        weights=fit["weights"],
        normalisation=fit.get("normalisation", "zscore"),
        objective=fit.get("objective", "dr"),
        estimated_value=fit.get("estimated_value"),
        estimates=fit.get("estimates", {}),
        gate_threshold=gate.get("threshold"),
        fitted_on=fit.get("fitted_on", {}),
        created_by=created_by,
        notes=notes,
    )
    weights.full_clean()
    weights.save()
    return weights


@transaction.atomic
def ensemble_weights_activate(*, version: int) -> EnsembleWeights:
    """Make ``version`` the active one; the previous active version is retired.

    After the commit the change is announced to every serving process
    (``serving.broadcast``), which re-applies the active weights to the
    engine it serves within ``APEX_RELOAD_POLL_SECONDS``.
    """
    chosen = EnsembleWeights.objects.select_for_update().get(version=version)
    if chosen.status == EnsembleWeights.Status.ACTIVE:
        return chosen
    EnsembleWeights.objects.filter(status=EnsembleWeights.Status.ACTIVE).update(
        status=EnsembleWeights.Status.RETIRED
    )
    chosen.status = EnsembleWeights.Status.ACTIVE
    chosen.activated_at = timezone.now()
    chosen.save(update_fields=["status", "activated_at"])
    transaction.on_commit(broadcast.announce)
    return chosen


def ensemble_weights_apply(*, engine: Any, weights: EnsembleWeights) -> Any:
    """A new serving engine blending with ``weights`` (the engine is unchanged).

    An empty gate threshold means the gate never fires (``EnsembleWeights``).
    Raises ``ApplicationError``: ``no_engine`` (503) when ``engine`` cannot be
    re-weighted, ``weights_rejected`` (422) when the version does not fit the
    loaded members (e.g. a member without an ONNX graph on tier 2).
    """
    if not callable(getattr(engine, "with_weights", None)):
        raise ApplicationError(
            "The loaded artifacts have no serving engine.",
            code=Code.NO_ENGINE,
            status_code=503,
        )
    blend = {name: float(w) for name, w in weights.weights.items()}
    gate = math.inf if weights.gate_threshold is None else weights.gate_threshold
    try:
        return engine.with_weights(blend, gate_threshold=gate)
    except (ValueError, KeyError) as exc:
        raise ApplicationError(
            f"The engine refused weights version {weights.version}: {exc}",
            code=Code.WEIGHTS_REJECTED,
            detail={"version": weights.version, "weights": blend},
            status_code=422,
        ) from exc


def ensemble_weights_engine(*, engine: Any, version: int) -> Any:
    """``engine`` re-weighted with stored weights ``version`` (an experiment
    variant's); ``ApplicationError`` ``not_found`` (404) for an unknown
    version, else as :func:`ensemble_weights_apply`."""
    weights = EnsembleWeights.objects.filter(version=version).first()
    if weights is None:
        raise ApplicationError(
            f"No ensemble weights version {version}.",
            code=ErrorCode.NOT_FOUND,
            status_code=404,
        )
    return ensemble_weights_apply(engine=engine, weights=weights)


def ensemble_weights_serve() -> dict[str, Any]:
    """Serve the active version in this process now and tell the others
    (``POST /v1/admin/reload-ensemble-weights``)."""
    from recommendations.serving.runtime import get_runtime

    started = time.perf_counter()
    active = EnsembleWeights.objects.filter(
        status=EnsembleWeights.Status.ACTIVE
    ).first()
    if active is None:
        raise ApplicationError(
            "No ensemble weights version is active.",
            code=Code.NO_ACTIVE_WEIGHTS,
            status_code=409,
        )
    runtime = get_runtime()
    runtime.get()  # loads lazily; ServingUnavailable (503) when it cannot
    bundle = runtime.replace_payload(
        lambda engine: ensemble_weights_apply(engine=engine, weights=active)
    )
    runtime.mark_seen(broadcast.announce())
    return {
        "weights_version": active.version,
        "weights": {name: float(w) for name, w in active.weights.items()},
        "gate_threshold": active.gate_threshold,
        "artifact_version": bundle.version,
        "duration_ms": round(1e3 * (time.perf_counter() - started), 2),
        "scope": "all_processes",
    }


def ensemble_weights_active() -> EnsembleWeights | None:
    return EnsembleWeights.objects.filter(status=EnsembleWeights.Status.ACTIVE).first()


MIN_REWARDED_SLATES = 20


def ensemble_weights_fit_from_impressions(
    *, min_slates: int | None = None, samples: int = 200, seed: int = 1
) -> tuple[dict[str, Any] | None, int]:
    """A weight fit chosen by DR on the system's own impression log.

    Reads the logged slates that carry their candidates' member scores (and
    the clicks joined to them, ``experiments.selectors.ope_records``) and
    searches blend weights by the slate DR estimate
    (``engine.bandits.blend.search_weights``). Returns ``(fit, slates)``;
    ``fit`` is ``None`` when the log is too thin (fewer than ``min_slates``,
    default ``APEX_IMPRESSIONS_MIN_SLATES``, or fewer than
    ``MIN_REWARDED_SLATES`` with a click): the caller falls back to the
    popularity proxy.
    """
    from experiments import selectors as experiment_selectors
    from recommendations.engine.bandits.blend import SlateBatch, search_weights

    records = experiment_selectors.ope_records()
    need = min_slates or settings.APEX_IMPRESSIONS_MIN_SLATES
    rewarded = sum(1 for r in records if any(r["rewards"]))
    if len(records) < need or rewarded < MIN_REWARDED_SLATES:
        return None, len(records)
    members = tuple(sorted({m for r in records for m in r["candidates"]}))
    choice = search_weights(
        SlateBatch.from_records(records, members), samples=samples, seed=seed
    )
    dr_value = choice.estimates["dr"]["value"]
    fit = {
        "weights": choice.weights,
        "normalisation": "zscore",
        "objective": "dr",
        "estimated_value": dr_value,
        "estimates": choice.estimates,
        "fitted_on": {
            "source": "impressions",
            "slates": choice.slates,
            "rewarded_slates": rewarded,
            "searched": choice.searched,
            "estimator": "item-position DR over logged slates (engine.bandits)",
            "seed": seed,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }
    return fit, len(records)


# ------------------------------------------------------------------ training
@dataclass(frozen=True)
class TrainResult:
    """What ``model_train`` produced (``skipped``: ``if_missing`` and a
    current version exists; then only ``artifact_version`` is set)."""

    artifact_version: str
    activated: bool
    skipped: bool = False
    weights_version: int | None = None
    weights_status: str | None = None
    metrics: dict[str, Any] | None = None
    tier_sizes: dict[str, tuple[int, int]] | None = None  # files, bytes
    seconds: float = 0.0


def model_train(
    *,
    dataset: str | None = None,
    gold: str | None = None,
    profile: str = "quick",
    seed: int = 1,
    members: tuple[str, ...] | None = None,
    device: str = "cpu",
    time_budget_s: float | None = None,
    id_field: str = "auto",
    artifact_version: str | None = None,
    activate: bool = True,
    if_missing: bool = False,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train the ensemble and publish a serving artifact version.

    Data: ``gold`` (the data platform's gold Delta tables), else ``dataset``:
    ``db`` (the default when the interaction log has events: the positive
    events of ``learning``, item ids = catalog ``Movie`` pks), ``ml-100k``,
    a MovieLens folder or a CSV (``user_id,item_id,rating,timestamp``; the
    MovieLens ids become ``Movie`` pks through ``id_field``, events of movies
    the catalog lacks are dropped; with no match at all the raw ids are kept,
    for benchmarks).

    Then: temporal leave-one-out split; the ensemble (``members``, the
    profile's budget) is fitted on the training events with weights chosen
    on the validation events; its test-set full-ranking metrics go into the
    manifest; the fitted weights are stored as a proposed ``EnsembleWeights``
    version and, with ``activate``, activated; the bundle is written through
    ``ArtifactStore`` and, with ``activate``, made current. Raises
    ``ApplicationError`` (``training_failed``) on bad data or an engine error.
    """
    from recommendations.engine.data.splits import make_split
    from recommendations.engine.errors import EngineError
    from recommendations.engine.evaluation.evaluator import evaluate
    from recommendations.engine.models.ensemble import Ensemble, EnsembleConfig
    from recommendations.engine.serving.build import build_bundle
    from recommendations.engine.training.profiles import trainer_config
    from recommendations.engine.training.trainer import Trainer
    from recommendations.serving.artifacts import ArtifactStore
    from recommendations.serving.catalog_metadata import build_item_metadata
    from recommendations.training_data import training_interactions

    say = progress or (lambda message: logger.info(message))
    store = ArtifactStore(settings.APEX_ARTIFACTS_DIR)
    if if_missing:
        root = Path(settings.APEX_ARTIFACTS_DIR)
        current = store.current_version() if root.is_dir() else None
        if current is not None:
            say(f"artifact version {current} is current; not training")
            return TrainResult(artifact_version=current, activated=False, skipped=True)
    started = time.perf_counter()
    try:
        data = training_interactions(dataset=dataset, gold=gold, id_field=id_field)
        split = make_split(data, "loo")
        say(
            f"data: {data.name}: {data.n_users} users, {data.n_items} items, "
            f"{data.n_events} events; splits {split.sizes()}"
        )
        overrides: dict[str, Any] = {}
        if members:
            overrides["members"] = tuple(members)
        if time_budget_s:
            overrides["time_budget_s"] = time_budget_s
        model = Ensemble(EnsembleConfig.for_profile(profile, **overrides))
        trainer = Trainer(trainer_config(Ensemble, profile, seed=seed, device=device))
        say(f"training {', '.join(model.config.members)} ({profile} profile)...")
        report = model.fit(split.train, split.validation_task(), trainer)
        rounded = {k: round(v, 3) for k, v in model.weight_dict().items()}
        say(f"trained in {report.train_seconds:.0f} s; weights {rounded}")
        result = evaluate(
            model, split.test_task(), item_counts=split.train.item_counts()
        )
        metrics = {
            "protocol": "temporal leave-one-out, full ranking, test events",
            **{k: round(result.mean(k), 4) for k in sorted(result.full)},
        }
        meta = build_item_metadata(split.train.items.ids)
    except (EngineError, ValueError) as exc:
        raise ApplicationError(str(exc), code=Code.TRAINING_FAILED) from exc

    fit = _weight_fit(model, data, split, seed=seed, profile=profile)
    weights = ensemble_weights_propose(fit=fit, notes="model_train")
    if activate:
        weights = ensemble_weights_activate(version=weights.version)

    staging = store.begin_version(artifact_version)
    try:
        fields = build_bundle(
            staging, train=split.train, ensemble=model, metadata=meta,
            profile=profile, seed=seed, metrics=metrics,
        )  # fmt: skip
        fields["notes"]["ensemble_weights_version"] = weights.version
        fields["data_snapshot"]["source"] = data.name
        manifest = store.commit(staging, fields)
    except Exception:
        store.abort(staging)
        raise
    if activate:
        store.set_current(manifest.version)
        # the weights' activation above was announced before this version
        # existed: announce again, or running processes keep the old version
        broadcast.announce()
    sizes = {
        str(tier): (len(files), sum(manifest.files[f].size for f in files))
        for tier, files in manifest.tiers.items()
    }
    elapsed = time.perf_counter() - started
    logger.info(
        "model trained",
        extra={
            "artifact_version": manifest.version,
            "weights_version": weights.version,
            "activated": activate,
            "seconds": round(elapsed, 1),
        },
    )
    return TrainResult(
        artifact_version=manifest.version,
        activated=activate,
        weights_version=weights.version,
        weights_status=weights.status,
        metrics=metrics,
        tier_sizes=sizes,
        seconds=elapsed,
    )


def _weight_fit(
    model: Any, data: Any, split: Any, *, seed: int, profile: str
) -> dict[str, Any]:
    """What ``ensemble_weights_propose`` stores (as ``fit_ensemble_weights``)."""
    from recommendations.engine.jsonable import to_jsonable

    selection = model.selection
    fit = {
        "weights": model.weight_dict(),
        "normalisation": model.normalisation,
        "objective": model.config.objective,
        "estimated_value": selection.value if selection else None,
        "estimates": selection.estimates if selection else {},
        "gate": model.gate.as_dict() if model.gate else None,
        "fitted_on": {
            **data.describe(),
            "protocol": "loo (weights chosen on the validation events)",
            "splits": split.sizes(),
            "seed": seed,
            "profile": profile,
            "command": "model_train",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }
    return to_jsonable(fit, finite=True)
