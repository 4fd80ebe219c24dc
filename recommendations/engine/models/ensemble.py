"""The ensemble: a weighted blend of member models' normalised scores.

Members (by default the six neural models) are trained one after the other
with the trainer's seed and device; their scores for a request are
normalised per user (:mod:`recommendations.engine.ensemble.normalise`) and
blended with weights on the simplex; a member with weight 0 is not scored at
all. Weights and the normalisation are chosen on the validation task
(:mod:`~recommendations.engine.ensemble.selection`) by validation NDCG@10,
under the long-tail floor; the DR, IPS and SNIPS estimates of every blend
are computed beside it (``objective="dr"`` selects by DR instead). The
uncertainty gate's threshold is calibrated on the same task
(:mod:`~recommendations.engine.ensemble.gate`).

Why NDCG and not DR (issue 19, measured in ``docs/BENCHMARKS.md``): the
offline DR estimate's propensities are a popularity proxy, not a logged
policy, so it overvalues hits on obscure items. On ML-100K with the seeded
tie order the DR-chosen blends reached 1.04 x the best single model with an
interval across 0, the NDCG-chosen ones 1.14 x with the interval above 0,
and a weight search allowed to follow DR further (``correction_search=
"joint"``) raised validation DR from 2.34 to 3.20 while test NDCG@10 fell to
0.66 x. DR is the objective where the propensities are real: weights chosen
from the impression log (``manage.py debias --from-impressions``).

``time_budget_s`` bounds the members' total training time: each member gets
the remaining budget divided by the members still to train (capped by its
own profile budget), so fast members leave time to slow ones.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from recommendations.engine.data.interactions import History, Interactions
from recommendations.engine.data.splits import EvalTask
from recommendations.engine.ensemble.gate import (
    GateCalibration,
    calibrate_gate,
    content_fallback_scores,
    disagreement,
    genre_matrix,
)
from recommendations.engine.ensemble.normalise import METHODS, Normalisation, normalise
from recommendations.engine.ensemble.selection import (
    CORRECTIONS,
    BlendData,
    WeightSelection,
    log_popularity,
    select_weights,
)
from recommendations.engine.errors import ConfigError, NotFittedError
from recommendations.engine.jsonable import to_jsonable
from recommendations.engine.models.base import ModelConfig, Recommender
from recommendations.engine.models.names import MODELS
from recommendations.engine.models.registry import get_model_class
from recommendations.engine.training.profiles import model_config, trainer_config
from recommendations.engine.training.trainer import FitReport, Trainer

logger = logging.getLogger(__name__)

DEFAULT_MEMBERS = ("diffusion", "lightgcn", "sasrec", "hyperbolic", "kan", "neural_ode")


class EnsembleConfig(ModelConfig):
    members: tuple[str, ...] = DEFAULT_MEMBERS
    """Registered models to blend, trained in this order (fast ones first)."""
    member_profile: Literal["quick", "full"] = "quick"
    """Training profile of every member."""
    member_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per member, hyperparameter overrides of its profile config."""
    time_budget_s: float | None = Field(None, gt=0)
    """Total wall-clock budget for training all members (``None``: each
    member's own profile budget only)."""
    normalisation: Literal["auto", "zscore", "rank"] = "auto"
    """Per-request score normalisation; ``auto`` picks the better one on
    validation (by the selection objective)."""
    objective: Literal["dr", "ips", "snips", "ndcg"] = "ndcg"
    """What weight selection maximises on validation (module docstring)."""
    samples: int = Field(200, ge=0)
    """Dirichlet samples of the weight search."""
    refine: bool = True
    """Refine the best sample by pairwise weight transfers."""
    clip: float | None = Field(100.0, gt=0)
    """Cap on importance weights (1 / propensity) in the estimators."""
    min_weight: float = Field(0.05, ge=0, lt=1)
    """Members below this weight are dropped if it costs < 1 % of the value."""
    slate_size: int = Field(10, ge=1)
    """``k`` of the evaluated policy (top-k slate)."""
    gate_candidates: int = Field(100, ge=1)
    """Items of the candidate list over which disagreement is averaged."""
    weights: dict[str, float] | None = None
    """Fixed weights (skip the search), e.g. an activated admin version."""
    long_tail_floor: bool = True
    """Choose a popularity correction so the blend's validation long-tail
    share is at least the best single member's (``selection`` docstring)."""

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"member_profile": "quick", "time_budget_s": 540.0},
        "full": {"member_profile": "full"},
    }

    @field_validator("members")
    @classmethod
    def _known_members(cls, members: tuple[str, ...]) -> tuple[str, ...]:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        for name in members:
            if name not in MODELS or name == "ensemble":
                raise ValueError(f"unknown member {name!r}")
        if len(set(members)) != len(members):
            raise ValueError("members must be distinct")
        return members


class Ensemble(Recommender):
    name = "ensemble"
    Config = EnsembleConfig
    config: EnsembleConfig

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.members: dict[str, Recommender] = {}
        self.weights = np.zeros(len(self.config.members))
        self.normalisation: Normalisation = (
            "zscore"
            if self.config.normalisation == "auto"
            else self.config.normalisation
        )
        self.popularity_correction = 0.0
        self.log_popularity: np.ndarray | None = None
        self.gate: GateCalibration | None = None
        self.selection: WeightSelection | None = None
        self.fit_info: dict[str, Any] = {}

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        train: Interactions,
        valid: EvalTask | None = None,
        trainer: Trainer | None = None,
    ) -> FitReport:
        """Train every member (shared budget), then select weights on ``valid``."""
        trainer = trainer or Trainer()
        cfg = self.config
        started = time.perf_counter()
        members: dict[str, Recommender] = {}
        reports: dict[str, Any] = {}
        for position, name in enumerate(cfg.members):
            cls = get_model_class(name)
            extra: dict[str, Any] = {}
            if cfg.time_budget_s is not None:
                left = cfg.time_budget_s - (time.perf_counter() - started)
                share = max(left / (len(cfg.members) - position), 5.0)
                own = trainer_config(cls, cfg.member_profile).time_budget_s
                extra["time_budget_s"] = min(share, own) if own else share
            member_trainer = Trainer(
                trainer_config(
                    cls, cfg.member_profile, seed=trainer.config.seed,
                    device=trainer.config.device, threads=trainer.config.threads,
                    **extra,
                )
            )  # fmt: skip
            model = cls(
                model_config(
                    cls, cfg.member_profile, **cfg.member_overrides.get(name, {})
                )
            )
            logger.info("ensemble: training member %s %s", name, extra)
            reports[name] = model.fit(train, valid, member_trainer).as_dict()
            members[name] = model
        members_seconds = time.perf_counter() - started
        self.use_members(members, train, valid, seed=trainer.config.seed)
        report = FitReport(model=self.name)
        report.train_seconds = time.perf_counter() - started
        report.cpu_seconds = sum(r.get("cpu_seconds", 0.0) for r in reports.values())
        report.epochs = 1
        report.extra.update(self.fit_info)
        report.extra["members_fit"] = reports
        report.extra["members_seconds"] = round(members_seconds, 1)
        self.last_fit = report
        return report

    def use_members(
        self,
        members: Mapping[str, Recommender],
        train: Interactions,
        valid: EvalTask | None,
        *,
        seed: int = 0,
    ) -> None:
        """Adopt already fitted members and choose the weights on ``valid``."""
        missing = [n for n in self.config.members if n not in members]
        if missing:
            raise ConfigError(f"ensemble members not fitted: {', '.join(missing)}")
        self.prepare(train)
        self.members = {n: members[n] for n in self.config.members}
        for name, model in self.members.items():
            if model.items is None or len(model.items) != len(train.items):
                raise ConfigError(f"member {name} was fitted on other items")
        self.select(train, valid, seed=seed)

    def select(
        self, train: Interactions, valid: EvalTask | None, *, seed: int = 0
    ) -> None:
        """Choose normalisation, weights and the gate threshold on ``valid``."""
        cfg = self.config
        names = list(self.config.members)
        counts = train.item_counts()
        self.log_popularity = log_popularity(counts)
        if cfg.weights is not None:
            unknown = set(cfg.weights) - set(names)
            if unknown:
                raise ConfigError(f"weights for non-members: {sorted(unknown)}")
            self.set_weights(cfg.weights)
            self.fit_info = {"weights": dict(cfg.weights), "selection": "fixed"}
            return
        if valid is None or len(valid) == 0:
            logger.warning("ensemble: no validation data, using uniform weights")
            self.weights = np.full(len(names), 1.0 / len(names))
            self.fit_info = {"weights": self.weight_dict(), "selection": "uniform"}
            return
        started = time.perf_counter()
        raw = {n: self.members[n].score(valid.histories) for n in names}
        scoring = time.perf_counter() - started
        methods = METHODS if cfg.normalisation == "auto" else (cfg.normalisation,)
        self.selection = select_weights(
            raw, valid, counts, objective=cfg.objective, normalisations=methods,
            samples=cfg.samples, seed=seed, refine=cfg.refine, k=cfg.slate_size,
            clip=cfg.clip, min_weight=cfg.min_weight,
            corrections=CORRECTIONS if cfg.long_tail_floor else (0.0,),
        )  # fmt: skip
        self.normalisation = self.selection.normalisation
        self.popularity_correction = self.selection.popularity_correction
        self.set_weights(self.selection.weights)
        data = BlendData.build(raw, valid, counts, method=self.normalisation)
        fallback = content_fallback_scores(
            valid.histories, genre_matrix(train.item_features, self.n_items), counts
        )
        self.gate = calibrate_gate(
            data, self.weights, fallback, candidates=cfg.gate_candidates,
            k=cfg.slate_size, correction=self.popularity_correction,
        )  # fmt: skip
        self.fit_info = {
            "weights": self.weight_dict(),
            "normalisation": self.normalisation,
            "popularity_correction": self.popularity_correction,
            "selection": self.selection.as_dict(),
            "gate": self.gate.as_dict(),
            "valid_scoring_seconds": round(scoring, 2),
        }

    # -------------------------------------------------------------- weights
    def set_weights(self, weights: Mapping[str, float]) -> None:
        w = np.array([float(weights.get(n, 0.0)) for n in self.config.members])
        if (w < 0).any() or w.sum() <= 0:
            raise ConfigError("ensemble weights must be >= 0 with a positive sum")
        self.weights = w / w.sum()

    def weight_dict(self) -> dict[str, float]:
        return dict(zip(self.config.members, map(float, self.weights), strict=True))

    def active_members(self) -> list[str]:
        return [
            n for n, w in zip(self.config.members, self.weights, strict=True) if w > 0
        ]

    # ---------------------------------------------------------------- score
    def _normalised(
        self,
        histories: list[History],
        candidates: np.ndarray | None,
        exclude: np.ndarray | None,
        names: Sequence[str] | None = None,
    ) -> tuple[list[str], np.ndarray]:
        if not self.members:
            raise NotFittedError("ensemble members are not loaded")
        names = list(self.active_members() if names is None else names)
        stack = []
        for n in names:
            raw = self.members[n].score(histories, candidates)
            stack.append(normalise(raw, self.normalisation, exclude))
        return names, np.stack(stack)

    def _weights_of(self, names: Sequence[str]) -> np.ndarray:
        index = {n: i for i, n in enumerate(self.config.members)}
        return np.array([self.weights[index[n]] for n in names])

    def _popularity_term(
        self, rows: int, candidates: np.ndarray | None, exclude: np.ndarray | None
    ) -> np.ndarray | float:
        """``beta * z_pop`` over the request's items (0 without a correction)."""
        if not self.popularity_correction or self.log_popularity is None:
            return 0.0
        pop = (
            self.log_popularity
            if candidates is None
            else self.log_popularity[candidates]
        )
        z = normalise(
            np.broadcast_to(pop, (rows, len(pop))), self.normalisation, exclude
        )
        return self.popularity_correction * z

    def _score(self, histories: list[History]) -> np.ndarray:
        return self.blend_of(histories, self.active_members())

    def blend_of(self, histories: list[History], names: Sequence[str]) -> np.ndarray:
        """``(B, N)`` full-catalog blend of the members ``names`` only, with
        the popularity correction. Their weights stay as they are (not
        renormalised): the full blend minus the left-out members' terms."""
        exclude = np.zeros((len(histories), self.n_items), dtype=bool)
        for b, h in enumerate(histories):
            exclude[b, h.items] = True
        names, stack = self._normalised(histories, None, exclude, names)
        blend = np.tensordot(self._weights_of(names), stack, axes=1)
        blend = blend - self._popularity_term(len(histories), None, exclude)
        return blend.astype(np.float32)

    def score_candidates(
        self, history: History, candidates: np.ndarray
    ) -> tuple[np.ndarray, float]:
        """Blend over one request's candidates: ``(scores (C,), disagreement)``.

        Normalisation and disagreement use the candidate list itself.
        """
        cand = np.asarray(candidates, dtype=np.int64)
        if cand.size == 0:
            return np.zeros(0, dtype=np.float32), 0.0
        names, stack = self._normalised([history], cand, None)
        w = self._weights_of(names)
        blend = np.tensordot(w, stack, axes=1) - self._popularity_term(1, cand, None)
        scores = blend[0].astype(np.float32)
        d = disagreement(
            stack, w, candidates=min(self.config.gate_candidates, cand.size)
        )
        return scores, float(d[0])

    def gate_fires(self, value: float) -> bool:
        return bool(self.gate is not None and self.gate.fires(value))

    # -------------------------------------------------------------- persist
    def get_state(self) -> dict[str, np.ndarray]:
        threshold = np.inf if self.gate is None else self.gate.threshold
        pop = self.log_popularity
        return {
            "weights": np.asarray(self.weights, dtype=np.float64),
            "gate_threshold": np.asarray([threshold], dtype=np.float64),
            "popularity_correction": np.asarray(
                [self.popularity_correction], dtype=np.float64
            ),
            "log_popularity": np.zeros(0, np.float32) if pop is None else pop,
        }

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.weights = np.asarray(state["weights"], dtype=np.float64)
        # Artifacts written before the correction existed have neither key.
        correction = state.get("popularity_correction", np.zeros(1))
        self.popularity_correction = float(np.asarray(correction)[0])
        pop = state.get("log_popularity")
        self.log_popularity = None if pop is None or not len(pop) else pop
        threshold = float(np.asarray(state["gate_threshold"])[0])
        self.gate = GateCalibration(
            threshold, float("nan"), [], self.config.gate_candidates
        )

    def save(self, path: str | Path) -> Path:
        if not self.members:
            raise NotFittedError("ensemble members are not fitted")
        folder = super().save(path)
        for name, model in self.members.items():
            model.save(folder / "members" / name)
        (folder / "ensemble.json").write_text(
            json.dumps(
                to_jsonable(
                    {"normalisation": self.normalisation, "fit_info": self.fit_info}
                )
            )
        )
        return folder

    def load_extra(self, folder: Path) -> None:
        extra = json.loads((folder / "ensemble.json").read_text())
        self.normalisation = extra["normalisation"]
        self.fit_info = extra.get("fit_info", {})
        self.members = {
            n: Recommender.load(folder / "members" / n) for n in self.config.members
        }
