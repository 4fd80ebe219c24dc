"""Fit the ensemble's weights on a data set: what a weights version stores.

``python -m recommendations.engine debias`` and ``manage.py debias`` call
:func:`fit_ensemble_weights`; the latter stores the result as a proposed
``EnsembleWeights`` version.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recommendations.engine.data.loading import load_data
from recommendations.engine.data.splits import make_split
from recommendations.engine.jsonable import to_jsonable
from recommendations.engine.models.ensemble import Ensemble, EnsembleConfig
from recommendations.engine.training.profiles import trainer_config
from recommendations.engine.training.trainer import Trainer

__all__ = ["fit_ensemble_weights"]


def fit_ensemble_weights(
    data_spec: str,
    *,
    members: list[str] | None = None,
    profile: str = "quick",
    seed: int = 1,
    device: str = "cpu",
    objective: str = "ndcg",
    save_model: str | Path | None = None,
    ties: str | None = None,
) -> dict[str, Any]:
    """Train the ensemble's members and choose its weights on validation.

    Returns what a weights version stores (plain JSON data): weights,
    normalisation, the estimates (DR, IPS, SNIPS, validation NDCG@10), the
    gate threshold, the data it was fitted on (with its tie rule) and when.
    """
    data = load_data(data_spec, seed=seed, ties=ties)
    split = make_split(data, "loo")
    overrides: dict[str, Any] = {"objective": objective}
    if members:
        overrides["members"] = tuple(members)
    config = EnsembleConfig.for_profile(profile, **overrides)
    model = Ensemble(config)
    trainer = Trainer(trainer_config(Ensemble, profile, seed=seed, device=device))
    report = model.fit(split.train, split.validation_task(), trainer)
    selection = model.selection
    out = {
        "weights": model.weight_dict(),
        "normalisation": model.normalisation,
        "objective": objective,
        "estimated_value": selection.value if selection else None,
        "estimates": selection.estimates if selection else {},
        "by_normalisation": selection.by_normalisation if selection else {},
        "gate": model.gate.as_dict() if model.gate else None,
        "fitted_on": {
            **data.describe(),
            "source": data_spec,
            "protocol": "loo (weights chosen on the validation events)",
            "splits": split.sizes(),
            "seed": seed,
            "profile": profile,
        },
        "train_seconds": round(report.train_seconds, 1),
        "members_fit": report.extra.get("members_fit", {}),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if save_model:
        model.save(save_model)
        out["model_path"] = str(save_model)
    plain: dict[str, Any] = to_jsonable(out)
    return plain
