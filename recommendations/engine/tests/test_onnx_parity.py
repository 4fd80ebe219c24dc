"""ONNX export parity: ONNX Runtime reproduces ``model.score`` for every neural model.

Each model is fitted tiny on the synthetic fixture, saved with
:func:`save_for_serving` (FP32 and INT8 graphs) and scored by
:class:`OnnxScorer` (1 intra-op thread) beside PyTorch.

Tolerances:

- FP32: ``rtol=1e-4, atol=1e-5``. The graph is the same arithmetic; only
  kernel summation order differs (observed max |diff| <= 5e-7 on scores of
  magnitude up to ~3), so anything above 1e-5 is a real export bug.
- INT8 (dynamic quantisation: INT8 weights, UINT8 activations per tensor):
  scores move by ~1 % of their range, so only the ranking is checked: mean
  top-10 overlap >= 0.8 and mean Spearman correlation >= 0.98 over the
  60-item catalog (observed >= 0.94 and >= 0.997 on these tiny models).
- Fixed-step RK4 (serving and export path of ``neural_ode``) vs torchdiffeq's
  adaptive dopri5 (rtol 1e-8): the gap is RK4's truncation error,
  O(h^4). On the trained model it must stay below 1e-3 of the score range
  (observed <= 5e-5); on a deliberately stiffened vector field halving the
  step must shrink it >= 8x (4th order predicts 16x; observed 11-19x).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from recommendations.engine.data import History, Split
from recommendations.engine.errors import ConfigError, UnknownItemError
from recommendations.engine.models import Recommender, get_model_class
from recommendations.engine.onnx.scorer import (
    FP32_FILE,
    INT8_FILE,
    OnnxScorer,
    save_for_serving,
)
from recommendations.engine.training import Trainer

pytest.importorskip("onnxruntime")

TINY_ONNX: dict[str, dict[str, Any]] = {
    "sasrec": {"hidden": 16, "max_len": 20, "blocks": 1, "batch_size": 64},
    # decay > 0: the recency-weighted fold-in path
    "lightgcn": {"dim": 16, "layers": 2, "batch_size": 512, "history_decay": 0.1},
    "kan": {"samples_per_epoch": 512},
    "neural_ode": {"dim": 16, "ode_hidden": 16, "max_len": 8},
    "quantum_fluid": {"dim": 16, "ode_hidden": 16, "max_len": 6},
    "hyperbolic": {"dim": 16, "history_decay": 0.1},
    # noised inference input: the seeded noise becomes a graph input
    "diffusion": {"hidden": (32,), "sampling_steps": 2, "inference_noise": True},
}
FP32_TOL = {"rtol": 1e-4, "atol": 1e-5}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module", params=list(TINY_ONNX))
def served(
    request: pytest.FixtureRequest,
    tiny_split: Split,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Recommender, Path]:
    torch.set_num_threads(1)
    name = request.param
    model = get_model_class(name)(**TINY_ONNX[name])
    model.fit(tiny_split.train, tiny_split.validation_task(), Trainer(max_epochs=2))
    folder = tmp_path_factory.mktemp(name)
    save_for_serving(model, folder, int8=True)
    return model, folder


def mixed_histories(split: Split) -> list[History]:
    """Different lengths in one batch, an empty history, a known user."""
    task = split.test_task()
    rows = [h for h in task.histories[:40] if len(h.items)]
    by_len = sorted(rows, key=len)
    known = by_len[-1]
    return [
        by_len[0],
        History(np.array([], dtype=np.int64)),
        History(known.items, known.timestamps, user=known.user),
        History(np.array([7])),
        by_len[len(by_len) // 2],
    ]


def test_fp32_graph_reproduces_pytorch_scores(
    served: tuple[Recommender, Path], tiny_split: Split
) -> None:
    model, folder = served
    scorer = OnnxScorer(folder, precision="fp32", threads=1)
    assert scorer.precision == "fp32" and scorer.path.name == FP32_FILE
    histories = mixed_histories(tiny_split)
    expected = model.score(histories)
    got = scorer.score(histories)
    assert got.dtype == np.float32 and got.shape == (len(histories), model.n_items)
    np.testing.assert_allclose(got, expected, **FP32_TOL)
    shared = np.array([5, 0, 17, 42])
    np.testing.assert_allclose(
        scorer.score(histories, shared), model.score(histories, shared), **FP32_TOL
    )
    per_user = np.random.default_rng(0).integers(0, model.n_items, (5, 9))
    np.testing.assert_allclose(
        scorer.score(histories, per_user), model.score(histories, per_user), **FP32_TOL
    )
    one = scorer.score_ids(list(model.items.ids[[3, 1]]), list(model.items.ids[:4]))
    np.testing.assert_allclose(one, model.score([[3, 1]], [0, 1, 2, 3])[0], **FP32_TOL)


def test_torch_free_feeds_equal_the_models_feeds(
    served: tuple[Recommender, Path], tiny_split: Split
) -> None:
    """The scorer builds its inputs from the saved folder without the model
    class (``onnx/feeds.py``); they must be the model's own ``onnx_feeds``."""
    model, folder = served
    scorer = OnnxScorer(folder, precision="fp32", threads=1)
    histories = mixed_histories(tiny_split)
    per_user = np.random.default_rng(1).integers(0, model.n_items, (5, 6))
    noised = model.name == "diffusion" and TINY_ONNX["diffusion"]["inference_noise"]
    # DiffRec's inference noise is torch's: the only model the scorer loads
    assert (scorer._model is not None) == noised
    for cand in (None, per_user):
        mine, theirs = scorer._feeds(histories, cand), model.onnx_feeds(histories, cand)
        assert mine.per_candidate == theirs.per_candidate
        assert mine.inputs.keys() == theirs.inputs.keys()
        for key, value in theirs.inputs.items():
            assert mine.inputs[key].dtype == value.dtype, key
            np.testing.assert_array_equal(mine.inputs[key], value, err_msg=key)


def test_diffusion_without_noise_has_torch_free_feeds(tiny_split: Split) -> None:
    from recommendations.engine.onnx.feeds import feed_builder

    model = get_model_class("diffusion")(hidden=(32,))
    model.fit(tiny_split.train, tiny_split.validation_task(), Trainer(max_epochs=1))
    config = model.config.model_dump(mode="json")
    build = feed_builder(
        "diffusion", config=config, state=model.get_state(),
        n_items=model.n_items, n_users=model.n_users,
    )  # fmt: skip
    assert build is not None
    histories = mixed_histories(tiny_split)
    expected = model.onnx_feeds(histories, None).inputs["x"]
    np.testing.assert_array_equal(build(histories, None).inputs["x"], expected)


def test_int8_graph_keeps_the_ranking(
    served: tuple[Recommender, Path], tiny_split: Split
) -> None:
    model, folder = served
    scorer = OnnxScorer(folder, precision="int8", threads=1)
    assert scorer.precision == "int8" and scorer.path.name == INT8_FILE
    histories = tiny_split.test_task().histories[:30]
    expected = model.score(histories)
    got = scorer.score(histories)
    assert got.shape == expected.shape and np.isfinite(got).all()
    overlap = [
        len(set(np.argsort(-a)[:10]) & set(np.argsort(-b)[:10])) / 10
        for a, b in zip(expected, got, strict=True)
    ]
    rho = [spearmanr(a, b).statistic for a, b in zip(expected, got, strict=True)]
    assert np.mean(overlap) >= 0.8, overlap
    assert np.nanmean(rho) >= 0.98, rho


def test_scorer_checks_its_inputs_and_its_graph(
    served: tuple[Recommender, Path], tmp_path: Path
) -> None:
    model, folder = served
    scorer = OnnxScorer(folder, precision="fp32")
    assert scorer.score([]).shape == (0, model.n_items)
    assert scorer.score([], candidates=[1, 2]).shape == (0, 2)
    with pytest.raises(UnknownItemError):
        scorer.score([[0, model.n_items]])
    with pytest.raises(UnknownItemError):
        scorer.score([[0]], candidates=[-1])
    # a graph exported from a different model is refused
    other_name = "diffusion" if model.name != "diffusion" else "sasrec"
    other = get_model_class(other_name)(**TINY_ONNX[other_name])
    other.items, other.n_users = model.items, model.n_users
    other.set_state(other.build_net().state_dict())
    stranger = other.export_onnx(tmp_path / "other.onnx")
    with pytest.raises(ConfigError, match="exported from"):
        OnnxScorer(folder, onnx_path=stranger)


def test_numpy_models_have_no_graph(tiny_split: Split, tmp_path: Path) -> None:
    model = get_model_class("pop")()
    model.fit(tiny_split.train)
    model.save(tmp_path)
    (tmp_path / FP32_FILE).write_bytes(b"")
    with pytest.raises(ConfigError, match="no ONNX graph"):
        OnnxScorer(tmp_path)


# ------------------------------------------------------- RK4 vs torchdiffeq
def _ode_scores(
    model: Recommender, histories: list[History], adaptive: bool
) -> np.ndarray:
    net = model.net.eval()
    seq, delta = model._pack(histories, model.config.max_len)
    with torch.no_grad():
        query = net(
            torch.from_numpy(seq),
            torch.from_numpy(delta),
            train=adaptive,
            last_only=True,
        )[:, -1]
        return (query @ net.item_weights().T).numpy()


def _clone(model: Recommender, **overrides: Any) -> Recommender:
    copy = type(model)(model.config, **overrides)
    copy.items, copy.n_users = model.items, model.n_users
    copy.set_state(model.get_state())
    return copy


@pytest.mark.parametrize("name", ["neural_ode", "quantum_fluid"])
def test_fixed_step_rk4_agrees_with_adaptive_solver(
    name: str, tiny_split: Split
) -> None:
    model = get_model_class(name)(dim=16, ode_hidden=16, max_len=8)
    model.fit(tiny_split.train, tiny_split.validation_task(), Trainer(max_epochs=2))
    histories = tiny_split.test_task().histories[:16]

    def gap(m: Recommender) -> tuple[float, np.ndarray]:
        reference = _clone(m, solver="dopri5", rtol=1e-8, atol=1e-9)
        exact = _ode_scores(reference, histories, adaptive=True)
        return float(np.abs(_ode_scores(m, histories, False) - exact).max()), exact

    err, exact = gap(model)
    assert err <= 1e-3 * np.abs(exact).max()
    np.testing.assert_allclose(  # the RK4 path is what model.score serves
        model.score(histories), _ode_scores(model, histories, False), rtol=1e-6
    )
    # stiffen the field: the gap must then shrink at RK4's order with the step
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        out = model.net.ode.net[2].weight
        out.copy_(torch.randn(out.shape, generator=generator))
        if model.net.ode.omega is not None:
            model.net.ode.omega.mul_(4.0)
    coarse, _ = gap(_clone(model, ode_steps=8))
    fine, _ = gap(_clone(model, ode_steps=16))
    assert coarse > 1e-5 and fine * 8 <= coarse, (coarse, fine)
