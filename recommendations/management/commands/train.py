"""``manage.py train``: train the ensemble and publish a serving artifact version.

Data (``--dataset``):

- ``db`` (the default when the Interaction log has events): the platform's
  own log, item ids = catalog Movie pks. Implicit feedback: every ``rating``,
  ``watch`` and ``click`` event is a positive interaction of the user with the
  movie (the models are trained on implicit feedback); a user-movie pair
  counts once, at its first event, with the latest rating's value kept as
  ``rating`` (0 when the pair was never rated). ``watchlist`` events are
  intent, not consumption, and are left out.
- ``ml-100k`` / a MovieLens folder / a CSV (``user_id,item_id,rating,timestamp``):
  the engine's loaders; MovieLens item ids become Movie pks through
  ``Movie.ml100k_id`` (ML-100K) or ``Movie.movielens_id`` (other sets) where
  the catalog has them (events of unmatched movies are dropped: the product
  cannot show them). With no match at all (an empty catalog) the raw ids
  are kept, for benchmarks.
- ``--gold DIR``: the data platform's gold Delta tables.

Then: temporal leave-one-out split; the ensemble (``--members``, the profile's
budget: ``quick`` caps the members' total at 540 s) is fitted on the training
events with weights chosen on the validation events; its test-set full-ranking
metrics go into the manifest; the fitted weights are stored as a proposed
``EnsembleWeights`` version and activated; the bundle (ensemble, ONNX graphs,
FAISS index, TF-IDF, item metadata from the catalog, popularity,
vocabularies) is written through ``ArtifactStore`` and made current.
``--no-activate`` leaves both the active weights and the ``current`` pointer
unchanged (the version is still published, for review).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from recommendations.engine.errors import EngineError

logger = logging.getLogger(__name__)

IMPLICIT_KINDS = ("rating", "watch", "click")


class Command(BaseCommand):
    help = "Train the ensemble and publish a serving artifact version."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dataset",
            default=None,
            help="db | ml-100k | folder | CSV (default: db when the log has events, "
            "else ml-100k)",
        )
        parser.add_argument("--gold", default=None, metavar="DIR", help="gold lake")
        parser.add_argument("--profile", choices=("quick", "full"), default="quick")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--members", nargs="+", default=None, help="ensemble members (names)"
        )
        parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
        parser.add_argument(
            "--time-budget", type=float, default=None, help="members' total seconds"
        )
        parser.add_argument(
            "--id-field",
            choices=("auto", "ml100k_id", "movielens_id", "pk"),
            default="auto",
            help="how external item ids map to Movie pks (non-db data)",
        )
        parser.add_argument(
            "--artifact-version", default=None, help="artifact version name"
        )
        parser.add_argument("--no-activate", action="store_true")
        parser.add_argument(
            "--if-missing",
            action="store_true",
            help="do nothing when a current artifact version exists (make run)",
        )

    # --------------------------------------------------------------- data
    def _load(self, options: dict[str, Any]) -> Any:
        from learning.models import Interaction
        from recommendations.engine.cli import load_data

        if options["gold"]:
            from recommendations.engine.data.gold import load_interactions

            return load_interactions(options["gold"], kinds=IMPLICIT_KINDS, name="gold")
        spec = options["dataset"]
        if spec is None:
            spec = "db" if Interaction.objects.exists() else "ml-100k"
        if spec == "db":
            return interactions_from_db()
        data = load_data(spec)
        return map_to_movies(data, _id_field(spec, options["id_field"]))

    # ------------------------------------------------------------- handle
    def handle(self, *args, **options) -> None:
        from recommendations import services
        from recommendations.engine.data.splits import make_split
        from recommendations.engine.evaluation.evaluator import evaluate
        from recommendations.engine.models.ensemble import Ensemble, EnsembleConfig
        from recommendations.engine.serving.build import build_bundle
        from recommendations.engine.training.profiles import trainer_config
        from recommendations.engine.training.trainer import Trainer
        from recommendations.serving.artifacts import ArtifactStore
        from recommendations.serving.catalog_metadata import build_item_metadata

        if options["if_missing"]:
            root = Path(settings.APEX_ARTIFACTS_DIR)
            current = ArtifactStore(root).current_version() if root.is_dir() else None
            if current is not None:
                self.stdout.write(
                    f"artifact version {current} is current; not training"
                )
                return
        started = time.perf_counter()
        profile, seed = options["profile"], options["seed"]
        try:
            data = self._load(options)
            split = make_split(data, "loo")
            self.stdout.write(
                f"data: {data.name}: {data.n_users} users, {data.n_items} items, "
                f"{data.n_events} events; splits {split.sizes()}"
            )
            overrides: dict[str, Any] = {}
            if options["members"]:
                overrides["members"] = tuple(options["members"])
            if options["time_budget"]:
                overrides["time_budget_s"] = options["time_budget"]
            model = Ensemble(EnsembleConfig.for_profile(profile, **overrides))
            trainer = Trainer(
                trainer_config(Ensemble, profile, seed=seed, device=options["device"])
            )
            self.stdout.write(
                f"training {', '.join(model.config.members)} ({profile} profile)..."
            )
            report = model.fit(split.train, split.validation_task(), trainer)
            rounded = {k: round(v, 3) for k, v in model.weight_dict().items()}
            self.stdout.write(
                f"trained in {report.train_seconds:.0f} s; "
                f"weights {json.dumps(rounded)}"
            )
            result = evaluate(
                model, split.test_task(), item_counts=split.train.item_counts()
            )
            metrics = {
                "protocol": "temporal leave-one-out, full ranking, test events",
                **{k: round(result.mean(k), 4) for k in sorted(result.full)},
            }
            meta = build_item_metadata(split.train.items.ids)
        except (EngineError, ValueError) as exc:
            raise CommandError(str(exc)) from exc

        fit = weight_fit(model, data, split, seed=seed, profile=profile)
        weights = services.propose_weights(fit=fit, notes="manage.py train")
        if not options["no_activate"]:
            weights = services.activate_weights(version=weights.version)

        store = ArtifactStore(settings.APEX_ARTIFACTS_DIR)
        staging = store.begin_version(options["artifact_version"])
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
        if not options["no_activate"]:
            store.set_current(manifest.version)
        elapsed = time.perf_counter() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"artifact version {manifest.version} "
                f"({'current' if not options['no_activate'] else 'not activated'}); "
                f"ensemble weights v{weights.version} "
                f"({weights.status}); ndcg@10 {metrics.get('ndcg@10')}"
            )
        )
        for tier, files in manifest.tiers.items():
            size = sum(manifest.files[f].size for f in files)
            self.stdout.write(f"  tier {tier}: {len(files)} files, {size / 1e6:.1f} MB")
        self.stdout.write(f"elapsed {elapsed:.1f} s")


# ------------------------------------------------------------------ helpers
def _id_field(spec: str, choice: str) -> str:
    if choice != "auto":
        return choice
    return "ml100k_id" if "100k" in Path(spec).name.lower() else "movielens_id"


def interactions_from_db() -> Any:
    """The Interaction log as engine interactions (see the module docstring)."""
    from learning.models import Interaction
    from recommendations.engine.data.interactions import Interactions

    rows = Interaction.objects.filter(kind__in=IMPLICIT_KINDS).values_list(
        "user_id", "movie_id", "kind", "value", "occurred_at"
    )
    frame = pd.DataFrame.from_records(
        list(rows.iterator(chunk_size=10_000)),
        columns=["user_id", "item_id", "kind", "value", "occurred_at"],
    )
    if frame.empty:
        raise CommandError("the Interaction log has no rating/watch/click events")
    frame["timestamp"] = (
        pd.to_datetime(frame["occurred_at"], utc=True).astype("int64") // 10**9
    )
    frame = frame.sort_values(["timestamp", "item_id"], kind="stable")
    rated = frame[frame["kind"] == "rating"].groupby(["user_id", "item_id"])["value"]
    pairs = frame.groupby(["user_id", "item_id"], as_index=False)["timestamp"].min()
    pairs["rating"] = (
        pairs.set_index(["user_id", "item_id"]).index.map(rated.last()).astype(float)
    )
    pairs["rating"] = pairs["rating"].fillna(0.0)
    return Interactions.from_frame(pairs, name="platform-log")


def map_to_movies(data: Any, field: str) -> Any:
    """Re-key MovieLens item ids to Movie pks (module docstring)."""
    from catalog.models import Movie
    from recommendations.engine.data.interactions import Interactions

    ids = [int(i) for i in data.items.ids]
    if field == "pk":
        mapping = {
            i: i for i in Movie.objects.filter(pk__in=ids).values_list("pk", flat=True)
        }
    else:
        mapping = dict(
            Movie.objects.filter(**{f"{field}__in": ids}).values_list(field, "pk")
        )
    if not mapping:
        logger.warning(
            "no catalog movie matches the %s ids of %s: training on the raw ids",
            field,
            data.name,
        )
        return data
    frame = data.to_frame()
    known = frame["item_id"].isin(list(mapping))
    if not known.all():
        logger.warning(
            "%d events of %d movies without a catalog match are left out",
            int((~known).sum()),
            len(set(ids) - set(mapping)),
        )
    frame = frame[known].copy()
    frame["item_id"] = frame["item_id"].map(mapping).astype(np.int64)
    features = None
    if data.item_features is not None:
        features = data.item_features.copy()
        features.index = data.items.ids
        features = features[features.index.isin(list(mapping))]
        features.index = [mapping[int(i)] for i in features.index]
    return Interactions.from_frame(frame, item_features=features, name=data.name)


def weight_fit(
    model: Any, data: Any, split: Any, *, seed: int, profile: str
) -> dict[str, Any]:
    """What ``services.propose_weights`` stores (as ``fit_ensemble_weights``)."""
    from datetime import UTC, datetime

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
            "command": "manage.py train",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }
    return json.loads(json.dumps(fit, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return str(value)
