"""Exploration, A/B assignment, sequential tests and off-policy evaluation.

- :mod:`.exploration`: epsilon-greedy (exact propensities) and Thompson
  sampling (Monte-Carlo propensities) in the reranker;
- :mod:`.ope`: IPS, SNIPS, DR and Switch-DR over logged slates;
- :mod:`.blend`: ensemble weights evaluated and chosen from logged slates;
- :mod:`.assignment`: GrowthBook-compatible FNV-1a bucketing;
- :mod:`.sequential`: an always-valid stopping rule (mSPRT);
- :mod:`.simulator`: simulated users with position-biased clicks.
"""

from recommendations.engine.bandits.assignment import assign, fnv1a32, gb_hash
from recommendations.engine.bandits.exploration import (
    ExplorationConfig,
    ExploredSlate,
    epsilon_greedy,
    epsilon_greedy_marginals,
    explore,
    thompson,
)
from recommendations.engine.bandits.ope import LoggedSlates, dr, ips, snips, switch_dr
from recommendations.engine.bandits.sequential import SequentialResult, compare

__all__ = [
    "ExplorationConfig",
    "ExploredSlate",
    "LoggedSlates",
    "SequentialResult",
    "assign",
    "compare",
    "dr",
    "epsilon_greedy",
    "epsilon_greedy_marginals",
    "explore",
    "fnv1a32",
    "gb_hash",
    "ips",
    "snips",
    "switch_dr",
    "thompson",
]
