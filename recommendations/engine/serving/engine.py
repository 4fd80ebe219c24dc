""":class:`ServingEngine`: a bundle (:mod:`.bundle`) loaded on one tier.

Tiers:

1. **pytorch** — the saved :class:`Ensemble` with its PyTorch members (on
   CUDA when asked for and available, else CPU);
2. **onnx** — the same ensemble (weights, normalisation, gate) with every
   neural member replaced by an :class:`OnnxScorer` (ONNX Runtime, CPU);
   numpy members (itemknn, ease, pop) stay as they are. ``OnnxScorer`` builds
   the graphs' inputs with the torch-free :mod:`~recommendations.engine.onnx.feeds`
   from the saved folders, so tier 2 never imports torch (a test checks it);
3. **content** — no deep network and no torch: FAISS ANN over the ANN
   member's item vectors + TF-IDF + popularity. Candidates are ranked by the
   blend ``0.6 z(ann) + 0.3 z(content) + 0.1 z(log(1 + count))`` (z-scores
   over the request's candidates; ``bundle.json["tier3_blend"]``).

Every tier runs the pipeline retrieval -> ranking -> reranking. Retrieval on
tiers 1/2 unions the ensemble's own full-catalog top k (``ensemble``: the
offline ranking, so the served list can match it; with ``ranking=
"candidates"`` without the members that only rank candidates, see
:data:`CANDIDATE_ONLY`), SASRec's next-item top k
(``sequence``, when SASRec has weight), the ANN, TF-IDF and knowledge-graph
neighbours, popular items as a fallback. Member scores are computed once per
request: a per-thread cache keyed by the request's ``History`` object lets the
ranking stage reuse the full-catalog scores the retrieval stage computed.

Item ids are external ids in and out (the catalog's Movie primary keys in the
product). Unknown ids in a history are skipped; an unknown ``item_id`` for
:meth:`ServingEngine.similar` / :meth:`~ServingEngine.knowledge_graph`
raises :class:`UnknownItemError`. A model failure at request time never
reaches the caller: the ranking stage logs one WARNING and ranks by the
content fallback (``flags["fallback"]``).
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from recommendations.engine.bandits.exploration import ExplorationConfig
from recommendations.engine.data.interactions import History
from recommendations.engine.errors import EngineError, EngineErrorCode, UnknownItemError
from recommendations.engine.pipeline.ann import AnnIndex
from recommendations.engine.pipeline.content import ContentModel
from recommendations.engine.pipeline.items import ItemMetadata
from recommendations.engine.pipeline.pipeline import (
    PipelineResult,
    RecommendationPipeline,
    RecommendationRequest,
)
from recommendations.engine.pipeline.ranking import (
    ContentFallbackScorer,
    Ranker,
    RankingConfig,
)
from recommendations.engine.pipeline.reranking import Reranker
from recommendations.engine.pipeline.retrieval import (
    CandidateSource,
    RetrievalConfig,
    RetrievalRequest,
    Retriever,
    ann_source,
    content_source,
    graph_source,
    popularity_order,
    recent_items,
)
from recommendations.engine.serving import bundle as B
from recommendations.engine.serving.bundle import UserEncoder
from recommendations.engine.serving.tiers import TIER_NAMES

logger = logging.getLogger(__name__)

RANKINGS = ("candidates", "catalog")
_BLEND = "__blend__"  # request-cache key of the ensemble's full-catalog blend
_RETRIEVAL_BLEND = "__retrieval_blend__"  # ... of its catalog-wide members only
CANDIDATE_ONLY = frozenset({"kan"})
"""Members that score the retrieved candidates only (``ranking="candidates"``):
the KAN ranker featurises every (user, item) pair, so the whole catalog costs
~5 ms per request on ML-100K (most of tier 2's engine time) and grows with the
catalog. The retrieval source ``ensemble`` then blends the other members."""

__all__ = ["BundleLoadError", "ServedList", "ServingEngine", "UnknownItemError"]


class BundleLoadError(EngineError):
    """A bundle (or one tier's part of it) is missing or unreadable."""

    code = EngineErrorCode.BUNDLE_LOAD_ERROR


@dataclass(frozen=True)
class ServedList:
    """One served list: external item ids best first, and how it was made.

    ``flags``: ``fallback`` (content / popularity served instead of the
    model), ``gate_fired`` (ensemble disagreement above the threshold),
    ``scorer`` (``ensemble`` | ``blend`` (tier 3) | ``content`` |
    ``retrieval_order`` | ``popularity``), ``tier``; plus ``skipped_ids``
    (history ids unknown to the bundle). ``reasons`` is empty when the caller
    asked for ``explain=False``.
    """

    item_ids: tuple[Any, ...]
    scores: tuple[float, ...]
    reasons: tuple[str, ...]
    flags: Mapping[str, Any]
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    propensities: tuple[float, ...] = ()
    """Per item, P(item at its position) under the serving policy (empty or
    all 1 without exploration)."""
    candidates: Mapping[str, Any] | None = None
    """When asked (``member_scores=True``): the candidates the list was ranked
    from and each ensemble member's raw score of them, ``{"item_ids": [...],
    "members": {name: [score per candidate]}}`` — what off-policy evaluation
    of other blend weights replays (``bandits.blend``)."""

    def __len__(self) -> int:
        return len(self.item_ids)

    def as_dict(self) -> dict[str, Any]:
        return {
            "item_ids": list(self.item_ids),
            "scores": [round(float(s), 6) for s in self.scores],
            "reasons": list(self.reasons),
            "flags": dict(self.flags),
            "timings_ms": {k: round(float(v), 3) for k, v in self.timings_ms.items()},
        }


# ------------------------------------------------------------ request cache
class _RequestCache(threading.local):
    """Per thread: the History being served and its members' full scores."""

    def __init__(self) -> None:
        self.history: History | None = None
        self.scores: dict[str, np.ndarray] = {}


class _CachedMember:
    """A member whose full-catalog scores are computed once per request."""

    def __init__(self, name: str, model: Any, cache: _RequestCache) -> None:
        self.name = name
        self.model = model
        self._cache = cache

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.model, attr)

    def score(self, histories: Sequence[Any], candidates: Any = None) -> np.ndarray:
        cache = self._cache
        scores: np.ndarray
        if len(histories) != 1 or histories[0] is not cache.history:
            scores = self.model.score(histories, candidates)
            return scores
        if candidates is not None and self.name in CANDIDATE_ONLY:
            if self.name not in cache.scores:  # full scores, if any, are exact
                scores = self.model.score(histories, candidates)
                return scores
        full = cache.scores.get(self.name)
        if full is None:
            full = np.asarray(self.model.score(histories), dtype=np.float32)
            cache.scores[self.name] = full
        if candidates is None:
            return full
        cand = np.asarray(candidates, dtype=np.int64)
        if cand.size and (cand.min() < 0 or cand.max() >= full.shape[1]):
            raise UnknownItemError(int(cand.max()), full.shape[1])
        if cand.ndim == 1:
            return full[:, cand]
        return np.take_along_axis(full, cand, axis=1)


def _top_k(scores: np.ndarray, k: int, exclude: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64).copy()
    scores[exclude] = -np.inf
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    kept: np.ndarray = top[np.isfinite(scores[top])]
    return kept


def _zscore(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


# ------------------------------------------------------------------ engine
class ServingEngine:
    """A loaded bundle on one tier (see the module docstring)."""

    def __init__(
        self,
        *,
        folder: Path,
        tier: int,
        settings: dict[str, Any],
        item_ids: list[Any],
        meta: ItemMetadata,
        content: ContentModel,
        ann: AnnIndex,
        encoder: UserEncoder,
        popularity: np.ndarray,
        ensemble: Any | None,
        retrieval: RetrievalConfig | None = None,
        device: str = "cpu",
        cache: _RequestCache | None = None,
        ranking: str = "candidates",
    ) -> None:
        if ranking not in RANKINGS:
            raise ValueError(f"ranking must be one of {RANKINGS}, got {ranking!r}")
        self.ranking = ranking
        self.folder = folder
        self.tier = tier
        self.tier_name = TIER_NAMES[tier]
        self.settings = settings
        self.item_ids = item_ids
        self._index = {i: n for n, i in enumerate(item_ids)}
        self.meta = meta
        self.content = content
        self.ann = ann
        self.encoder = encoder
        self.popularity = np.asarray(popularity, dtype=np.int64)
        self.popular_order = popularity_order(self.popularity)
        self.ensemble = ensemble
        self.device = device
        self.retrieval_config = retrieval or RetrievalConfig()
        self._cache = cache or _RequestCache()
        self.pipeline = self._build_pipeline()

    # ---------------------------------------------------------------- load
    @classmethod
    def load(
        cls,
        folder: str | Path,
        tier: int,
        *,
        device: str | None = None,
        retrieval: RetrievalConfig | None = None,
        ranking: str = "candidates",
    ) -> ServingEngine:
        """Load ``folder`` (a bundle) for ``tier`` 1, 2 or 3.

        ``device`` (tier 1): ``cuda`` / ``cpu``; default CUDA when available.
        ``ranking`` (tiers 1/2): ``candidates`` blends the members' scores
        normalised over the request's candidates (``Ensemble.score_candidates``);
        ``catalog`` ranks the candidates by the blend normalised over every
        unseen item, exactly the offline ranking (the gate still uses the
        candidates' disagreement).
        Raises :class:`BundleLoadError` when the tier's files are missing or
        unreadable (a corrupt ONNX file included), so the caller can step
        down a tier.
        """
        if tier not in TIER_NAMES:
            raise ValueError(f"tier must be 1, 2 or 3, got {tier!r}")
        root = Path(folder)
        try:
            settings = json.loads((root / B.BUNDLE_JSON).read_text(encoding="utf-8"))
            items_dir = root / B.ITEMS_DIR
            item_ids = B.load_vocab(items_dir / B.VOCAB_FILE)
            meta = B.load_metadata(items_dir / B.METADATA_FILE)
            popularity = np.load(items_dir / B.POPULARITY_FILE, allow_pickle=False)
            content = ContentModel.load(root / B.CONTENT_DIR)
            ann = AnnIndex.load(root / B.ANN_DIR)
            encoder = UserEncoder.load(root / B.ANN_DIR / B.ENCODER_FILE)
        except (OSError, ValueError, EngineError) as exc:
            raise BundleLoadError(f"cannot load the bundle at {root}: {exc}") from exc
        if not (len(item_ids) == meta.n_items == len(popularity) == ann.n_items):
            raise BundleLoadError(f"{root}: the bundle's item tables disagree in size")
        ensemble = None
        used = "cpu"
        if tier == 1:
            ensemble, used = _load_tier1(root, device)
        elif tier == 2:
            ensemble = _load_tier2(root, settings)
        if ensemble is not None and ensemble.n_items != len(item_ids):
            raise BundleLoadError(
                f"{root}: the ensemble has other items than the bundle"
            )
        return cls(
            folder=root, tier=tier, settings=settings, item_ids=item_ids, meta=meta,
            content=content, ann=ann, encoder=encoder, popularity=popularity,
            ensemble=ensemble, retrieval=retrieval, device=used, ranking=ranking,
        )  # fmt: skip

    # ------------------------------------------------------------ pipeline
    def _build_pipeline(self) -> RecommendationPipeline:
        sources: list[CandidateSource] = []
        ens = self.ensemble
        if ens is not None:
            cache = self._cache
            ens.members = {
                n: m if isinstance(m, _CachedMember) else _CachedMember(n, m, cache)
                for n, m in ens.members.items()
            }

            def ensemble_top(request: RetrievalRequest, k: int) -> np.ndarray:
                if len(request.history) == 0:
                    return np.zeros(0, dtype=np.int64)
                blend = (
                    self._retrieval_blend(request.history)
                    if self.ranking == "candidates"
                    else self._catalog_blend(request.history)
                )
                return _top_k(blend, k, request.exclude)

            sources.append(CandidateSource("ensemble", _quiet(ensemble_top)))
            if "sasrec" in ens.active_members():
                sasrec = ens.members["sasrec"]

                def next_items(request: RetrievalRequest, k: int) -> np.ndarray:
                    if len(request.history) == 0:
                        return np.zeros(0, dtype=np.int64)
                    full = sasrec.score([request.history])[0]
                    return _top_k(full, k, request.exclude)

                sources.append(CandidateSource("sequence", _quiet(next_items)))
        sources += [
            ann_source(self.ann, self.encoder),
            content_source(self.content),
            graph_source(self.meta),
        ]
        retriever = Retriever(sources, self.popular_order, self.retrieval_config)
        fallback = ContentFallbackScorer(self.content, self.popularity)
        if ens is not None:
            threshold = ens.gate.threshold if ens.gate is not None else None
            if threshold is not None and not np.isfinite(threshold):
                threshold = None
            score = (
                ens.score_candidates
                if self.ranking == "candidates"
                else self._by_catalog
            )
            ranker = Ranker(score, fallback, RankingConfig(gate_threshold=threshold))
        else:
            ranker = Ranker(self._blend_scores, fallback, RankingConfig())
        return RecommendationPipeline(
            retriever, ranker, Reranker(self.meta, self.content.similarity)
        )

    def _require_ensemble(self) -> Any:
        """The loaded ensemble; only tiers 1/2 have one (and ask for it)."""
        if self.ensemble is None:
            raise BundleLoadError(f"tier {self.tier} has no ensemble loaded")
        return self.ensemble

    def _once_per_request(self, history: History, key: str, compute: Any) -> np.ndarray:
        """``compute()`` for ``history``, kept in the request cache under ``key``."""
        cache = self._cache
        mine = cache.history is history
        value = cache.scores.get(key) if mine else None
        if value is None:
            value = compute()
            if mine:
                cache.scores[key] = value
        return value

    def _catalog_blend(self, history: History) -> np.ndarray:
        """The ensemble's full-catalog blend for ``history``, once per request."""
        return self._once_per_request(
            history, _BLEND, lambda: self._require_ensemble().score([history])[0]
        )

    def _retrieval_blend(self, history: History) -> np.ndarray:
        """The blend of the members that score the whole catalog (all but
        :data:`CANDIDATE_ONLY`), once per request: the ``ensemble`` source."""
        ens = self._require_ensemble()
        active = ens.active_members()
        names = [n for n in active if n not in CANDIDATE_ONLY] or active
        if names == active:
            return self._catalog_blend(history)
        return self._once_per_request(
            history, _RETRIEVAL_BLEND, lambda: ens.blend_of([history], names)[0]
        )

    def _by_catalog(
        self, history: History, candidates: np.ndarray
    ) -> tuple[np.ndarray, float]:
        _, disagreement = self._require_ensemble().score_candidates(history, candidates)
        return self._catalog_blend(history)[candidates], disagreement

    def _blend_scores(
        self, history: History, candidates: np.ndarray
    ) -> tuple[np.ndarray, float]:
        """Tier 3 ranking (module docstring): no deep network."""
        w = self.settings.get("tier3_blend") or {}
        pop = np.log1p(self.popularity[candidates].astype(np.float64))
        score = w.get("popularity", 0.1) * _zscore(pop)
        if len(history):
            user = np.asarray(self.encoder(history), dtype=np.float32)
            vecs = self.ann.index.reconstruct_batch(candidates.astype(np.int64))
            ann = vecs[:, : len(user)] @ user
            recent = recent_items(history, 5)
            cw = 0.5 ** np.arange(len(recent), dtype=np.float32)
            sim = self.content.scores(recent, candidates, cw)
            score += w.get("ann", 0.6) * _zscore(ann) + w.get("content", 0.3) * _zscore(
                sim
            )
        return score, 0.0

    # ------------------------------------------------------------- helpers
    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def _lookup(self, item_id: Any) -> int | None:
        idx = self._index.get(item_id)
        if idx is None and isinstance(item_id, str) and item_id.lstrip("-").isdigit():
            idx = self._index.get(int(item_id))
        return idx

    def _dense(self, ids: Iterable[Any]) -> tuple[np.ndarray, int]:
        found, skipped = [], 0
        for i in ids:
            idx = self._lookup(i)
            if idx is None:
                skipped += 1
            else:
                found.append(idx)
        return np.asarray(found, dtype=np.int64), skipped

    def _require(self, item_id: Any) -> int:
        idx = self._lookup(item_id)
        if idx is None:
            raise UnknownItemError(item_id, self.n_items)
        return idx

    def _external(self, items: np.ndarray) -> tuple[Any, ...]:
        return tuple(self.item_ids[int(i)] for i in items)

    def _serve(
        self,
        history: History,
        *,
        n: int,
        diversity: float | None,
        exclude_seen: bool,
        exclude: np.ndarray,
        explain: bool,
        skipped: int,
        started: float,
        exploration: ExplorationConfig | None = None,
        member_scores: bool = False,
    ) -> ServedList:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if diversity is not None and not 0.0 <= diversity <= 1.0:
            raise ValueError(f"diversity must be in [0, 1], got {diversity}")
        self._cache.history, self._cache.scores = history, {}
        try:
            result = self.pipeline.run(
                RecommendationRequest(
                    history, n=n, diversity=diversity,
                    exclude_seen=exclude_seen, exclude=exclude,
                    exploration=exploration,
                )
            )  # fmt: skip
            candidates = (
                self._member_scores(history, result)
                if member_scores and result.scorer == "ensemble"
                else None
            )
        except Exception as exc:  # never an exception to the caller
            logger.warning("serving pipeline failed, serving popular items: %r", exc)
            seen = history.items if exclude_seen else np.zeros(0, dtype=np.int64)
            return self._popular(
                n, np.concatenate([seen, exclude]), explain, started, fallback=True
            )
        finally:
            self._cache.history, self._cache.scores = None, {}
        served = self._wrap(result, explain, skipped, started)
        return replace(served, candidates=candidates) if candidates else served

    def _member_scores(
        self, history: History, result: PipelineResult
    ) -> dict[str, Any] | None:
        """Each active member's raw score of the candidates (and the shown
        items), from this request's cache where the ranking computed them."""
        ens = self.ensemble
        if ens is None or not len(result.candidates):
            return None
        cand = np.unique(np.concatenate([result.candidates, result.items]))
        try:
            members = {
                name: [
                    round(float(v), 6)
                    for v in np.asarray(ens.members[name].score([history], cand))[0]
                ]
                for name in ens.active_members()
            }
        except Exception as exc:  # a log extra never costs the served list
            logger.warning("member scores not logged: %r", exc)
            return None
        return {"item_ids": list(self._external(cand)), "members": members}

    def _wrap(
        self, result: PipelineResult, explain: bool, skipped: int, started: float
    ) -> ServedList:
        scorer = result.scorer
        if self.ensemble is None and scorer == "ensemble":
            scorer = "blend"
        timings = dict(result.timings_ms)
        timings["engine"] = 1e3 * (time.perf_counter() - started)
        flags_policy = {"policy": result.policy} if result.policy != "greedy" else {}
        return ServedList(
            item_ids=self._external(result.items),
            scores=tuple(float(s) for s in result.scores),
            reasons=tuple(result.reasons) if explain else (),
            flags={
                "fallback": bool(result.fallback_used),
                "gate_fired": bool(result.gate_fired),
                "scorer": scorer,
                "tier": self.tier,
                "skipped_ids": skipped,
                **flags_policy,
            },
            timings_ms=timings,
            propensities=tuple(float(p) for p in result.propensities),
        )

    def _popular(
        self,
        n: int,
        exclude: np.ndarray,
        explain: bool,
        started: float,
        *,
        fallback: bool = False,
    ) -> ServedList:
        order = self.popular_order
        if len(exclude):
            order = order[~np.isin(order, exclude)]
        top = order[:n]
        return ServedList(
            item_ids=self._external(top),
            scores=tuple(float(c) for c in self.popularity[top]),
            reasons=("Popular right now",) * len(top) if explain else (),
            flags={
                "fallback": fallback,
                "gate_fired": False,
                "scorer": "popularity",
                "tier": self.tier,
                "skipped_ids": 0,
            },
            timings_ms={"engine": 1e3 * (time.perf_counter() - started)},
        )

    # ------------------------------------------------------------ requests
    def recommend(
        self,
        history_ids: Sequence[Any],
        *,
        n: int = 10,
        diversity: float | None = None,
        exclude_seen: bool = True,
        exclude_ids: Iterable[Any] = (),
        explain: bool = True,
        exploration: ExplorationConfig | None = None,
        member_scores: bool = False,
    ) -> ServedList:
        """Top ``n`` for a user whose history (oldest first) is ``history_ids``
        (``exploration``: see ``bandits.exploration``; off by default;
        ``member_scores``: also return ``ServedList.candidates``)."""
        started = time.perf_counter()
        items, skipped = self._dense(history_ids)
        exclude, _ = self._dense(exclude_ids)
        return self._serve(
            History(items), n=n, diversity=diversity, exclude_seen=exclude_seen,
            exclude=exclude, explain=explain, skipped=skipped, started=started,
            exploration=exploration, member_scores=member_scores,
        )  # fmt: skip

    def similar(
        self, item_id: Any, *, n: int = 10, diversity: float | None = None
    ) -> ServedList:
        """ "More like this": the pipeline on a one-item history."""
        started = time.perf_counter()
        idx = self._require(item_id)
        served = self._serve(
            History(np.array([idx], dtype=np.int64)), n=n, diversity=diversity,
            exclude_seen=True, exclude=np.zeros(0, dtype=np.int64), explain=True,
            skipped=0, started=started,
        )  # fmt: skip
        reasons = tuple(
            r.replace("Because you watched", "Similar to", 1) for r in served.reasons
        )
        return ServedList(
            served.item_ids, served.scores, reasons, served.flags, served.timings_ms
        )

    def popular(self, n: int, exclude_ids: Iterable[Any] = ()) -> ServedList:
        """The ``n`` most interacted-with items of the training data."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        exclude, _ = self._dense(exclude_ids)
        return self._popular(n, exclude, True, time.perf_counter())

    def knowledge_graph(self, item_id: Any, *, n: int = 10) -> dict[str, Any]:
        """Neighbours of ``item_id`` by shared director, collection, lead cast, genres.

        Each group: ``names`` (what is shared) and ``items`` (``item_id``,
        ``title``, ``year``, ``shared``), most popular first (lead cast: most
        shared cast first; genres: highest genre cosine first).
        """
        idx = self._require(item_id)
        meta, names = self.meta, self.meta.person_names
        everything = np.arange(meta.n_items)
        anchor = np.array([idx])
        pop = self.popularity

        def group(strength: np.ndarray, label: list[str]) -> dict[str, Any]:
            strength = np.asarray(strength, dtype=np.float64).ravel().copy()
            strength[idx] = 0.0
            related = np.flatnonzero(strength > 0)
            order = np.lexsort((related, -pop[related], -strength[related]))[:n]
            return {
                "names": label,
                "items": [
                    self._item_card(int(j), float(strength[j])) for j in related[order]
                ],
            }

        directors = [names.get(p, str(p)) for p in meta.directors_of(idx)]
        cast = [names.get(p, str(p)) for p in meta.cast_of(idx)]
        coll = meta.collection_name(idx)
        return {
            "item": self._item_card(idx, None),
            "same_director": group(
                meta.shared(meta.directors, anchor, everything) > 0, directors
            ),
            "same_collection": group(
                meta.same_collection(anchor, everything), [coll] if coll else []
            ),
            "lead_cast": group(meta.shared(meta.cast, anchor, everything), cast),
            "genres": group(
                np.round(meta.genre_similarity(anchor, everything), 6),
                meta.genres_of(idx),
            ),
        }

    def _item_card(self, idx: int, shared: float | None) -> dict[str, Any]:
        year = self.meta.years[idx]
        card: dict[str, Any] = {
            "item_id": self.item_ids[idx],
            "title": self.meta.titles[idx],
            "year": int(year) if np.isfinite(year) else None,
        }
        if shared is not None:
            card["shared"] = shared
        return card

    # ------------------------------------------------------------- weights
    def with_weights(
        self, weights: Mapping[str, float], *, gate_threshold: float | None = None
    ) -> ServingEngine:
        """A new engine sharing the loaded models, blending with ``weights``.

        Tier 3 has no ensemble: the weights are validated and kept in
        ``settings`` only. A member given weight on tier 2 must have been
        loaded (numpy member or exported ONNX graph), else ``ValueError``.
        """
        members = set(self.settings.get("members", ()))
        unknown = set(weights) - members
        if unknown:
            raise ValueError(f"weights for non-members: {sorted(unknown)}")
        if (
            any(float(w) < 0 for w in weights.values())
            or sum(float(w) for w in weights.values()) <= 0
        ):
            raise ValueError("weights must be >= 0 with a positive sum")
        settings = {**self.settings, "weights": dict(weights)}
        ensemble = None
        if self.ensemble is not None:
            missing = [
                n
                for n, w in weights.items()
                if w > 0 and n not in self.ensemble.members
            ]
            if missing:
                raise ValueError(
                    f"members not loaded on tier {self.tier}: {sorted(missing)}"
                )
            ensemble = copy.copy(self.ensemble)
            ensemble.set_weights(dict(weights))
            if gate_threshold is not None:
                ensemble.gate = copy.copy(ensemble.gate)
                if ensemble.gate is not None:
                    ensemble.gate.threshold = float(gate_threshold)
        return ServingEngine(
            folder=self.folder, tier=self.tier, settings=settings,
            item_ids=self.item_ids, meta=self.meta, content=self.content,
            ann=self.ann, encoder=self.encoder, popularity=self.popularity,
            ensemble=ensemble, retrieval=self.retrieval_config, device=self.device,
            cache=self._cache, ranking=self.ranking,
        )  # fmt: skip

    def with_member(self, name: str, scorer: Any) -> ServingEngine:
        """A new engine whose ensemble member ``name`` scores with ``scorer``
        (an online snapshot of that member: a ``Recommender`` on tier 1, an
        ``OnnxScorer`` on tier 2); weights, indexes and the other members are
        shared. ``ValueError`` when the tier has no such member."""
        if self.ensemble is None or name not in self.ensemble.members:
            raise ValueError(f"no ensemble member {name!r} on tier {self.tier}")
        current = self.ensemble.members[name]
        if getattr(scorer, "n_items", None) != getattr(current, "n_items", None):
            raise ValueError(f"{name}: the snapshot has another catalog size")
        ensemble = copy.copy(self.ensemble)
        ensemble.members = {**self.ensemble.members, name: scorer}
        return ServingEngine(
            folder=self.folder, tier=self.tier, settings=self.settings,
            item_ids=self.item_ids, meta=self.meta, content=self.content,
            ann=self.ann, encoder=self.encoder, popularity=self.popularity,
            ensemble=ensemble, retrieval=self.retrieval_config, device=self.device,
            ranking=self.ranking,
        )  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """What is loaded (for status pages)."""
        out: dict[str, Any] = {
            "tier": self.tier,
            "tier_name": self.tier_name,
            "items": self.n_items,
            "device": self.device,
            "ann_member": self.settings.get("ann_member"),
        }
        if self.ensemble is not None:
            out["weights"] = self.ensemble.weight_dict()
            out["popularity_correction"] = self.ensemble.popularity_correction
            out["scorers"] = {
                n: type(getattr(m, "model", m)).__name__
                for n, m in self.ensemble.members.items()
            }
        return out


def _quiet(fn: Any) -> Any:
    """A model-backed retrieval source: a failure returns no candidates silently.

    The same model fails again in the ranking stage, which logs the one
    WARNING and serves the content fallback.
    """

    def wrapped(request: RetrievalRequest, k: int) -> np.ndarray:
        try:
            found: np.ndarray = fn(request, k)
            return found
        except Exception as exc:
            logger.debug("model-backed retrieval source failed: %r", exc)
            return np.zeros(0, dtype=np.int64)

    return wrapped


# ------------------------------------------------------------------ loaders
def _load_tier1(root: Path, device: str | None) -> tuple[Any, str]:
    from recommendations.engine.models.ensemble import Ensemble

    try:
        ensemble = Ensemble.load(root / B.ENSEMBLE_DIR)
    except Exception as exc:
        raise BundleLoadError(f"tier 1: cannot load the ensemble: {exc}") from exc
    import torch

    want = device or ("cuda" if torch.cuda.is_available() else "cpu")
    used = "cpu"
    if want.startswith("cuda") and torch.cuda.is_available():
        for member in ensemble.members.values():
            if hasattr(member, "net"):
                member.device = want
                member.set_state(member.get_state())
        used = want
    return ensemble, used


def _load_tier2(root: Path, settings: dict[str, Any]) -> Any:
    """The ensemble's weights + ONNX scorers for neural members (no torch load
    of the ensemble's own members)."""
    from recommendations.engine.data.interactions import Vocabulary
    from recommendations.engine.models.base import Recommender
    from recommendations.engine.models.ensemble import Ensemble, EnsembleConfig

    folder = root / B.ENSEMBLE_DIR
    try:
        meta = json.loads((folder / "model.json").read_text())
        ensemble = Ensemble(EnsembleConfig(**meta["config"]))
        ensemble.items = Vocabulary(np.asarray(meta["item_ids"]))
        ensemble.n_users = int(meta["n_users"])
        with np.load(folder / "state.npz", allow_pickle=False) as npz:
            ensemble.set_state({k: npz[k] for k in npz.files})
        extra = json.loads((folder / "ensemble.json").read_text())
        ensemble.normalisation = extra["normalisation"]
        ensemble.fit_info = extra.get("fit_info", {})
    except Exception as exc:
        raise BundleLoadError(f"tier 2: cannot read the ensemble: {exc}") from exc
    neural = set(settings.get("neural_members", ()))
    with_onnx = set(settings.get("onnx_members", ()))
    members: dict[str, Any] = {}
    for name in ensemble.config.members:
        try:
            if name in with_onnx:
                from recommendations.engine.onnx.scorer import OnnxScorer

                members[name] = OnnxScorer(root / B.ONNX_DIR / name)
            elif name not in neural:
                members[name] = Recommender.load(folder / "members" / name)
        except Exception as exc:
            raise BundleLoadError(
                f"tier 2: cannot load member {name!r}: {type(exc).__name__}: {exc}"
            ) from exc
    missing = [n for n in ensemble.active_members() if n not in members]
    if missing:
        raise BundleLoadError(f"tier 2: no ONNX graph for weighted members {missing}")
    ensemble.members = members
    return ensemble
