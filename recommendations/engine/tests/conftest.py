"""Shared fixtures of the engine tests: tiny synthetic data, no database."""

from __future__ import annotations

import pytest

from recommendations.engine.data import Interactions, Split, leave_one_out
from recommendations.engine.data.synthetic import SyntheticData, generate


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: slower engine tests (still run in CI)")


@pytest.fixture(autouse=True)
def _two_threads() -> None:
    import torch

    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def synthetic() -> SyntheticData:
    return generate(users=120, items=60, interactions=2400, clusters=4, seed=7)


@pytest.fixture(scope="session")
def tiny_data(synthetic: SyntheticData) -> Interactions:
    return synthetic.interactions()


@pytest.fixture(scope="session")
def tiny_split(tiny_data: Interactions) -> Split:
    return leave_one_out(tiny_data)
