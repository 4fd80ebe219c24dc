"""GrowthBook-compatible assignment: the SDK's own test vectors, stability, split."""

from __future__ import annotations

import numpy as np
import pytest

from recommendations.engine.bandits.assignment import (
    assign,
    bucket_ranges,
    choose_variation,
    fnv1a32,
    gb_hash,
)

# GrowthBook SDK specification test cases (growthbook/growthbook-python,
# tests/cases.json, specVersion 0.7.1, MIT): [seed, value, version, expected].
HASH_CASES = [
    ["", "a", 1, 0.22],
    ["", "b", 1, 0.077],
    ["b", "a", 1, 0.946],
    ["ef", "d", 1, 0.652],
    ["asdf", "8952klfjas09ujk", 1, 0.549],
    ["", "123", 1, 0.011],
    ["", '___)((*":&', 1, 0.563],
    ["seed", "a", 2, 0.0505],
    ["seed", "b", 2, 0.2696],
    ["foo", "ab", 2, 0.2575],
    ["foo", "def", 2, 0.2019],
    ["89123klj", "8952klfjas09ujkasdf", 2, 0.124],
    ["90850943850283058242805", "123", 2, 0.7516],
    ["()**(%$##$%#$#", '___)((*":&', 2, 0.0128],
    ["abc", "def", 99, None],
]
BUCKET_CASES = [
    ("normal 50/50", (2, 1, None), [(0, 0.5), (0.5, 1)]),
    ("reduced coverage", (2, 0.5, None), [(0, 0.25), (0.5, 0.75)]),
    ("zero coverage", (2, 0, None), [(0, 0), (0.5, 0.5)]),
    ("4 variations", (4, 1, None), [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]),
    ("uneven weights", (2, 1, [0.4, 0.6]), [(0, 0.4), (0.4, 1)]),
    ("uneven, 3", (3, 1, [0.2, 0.3, 0.5]), [(0, 0.2), (0.2, 0.5), (0.5, 1)]),
    ("uneven, reduced, 3", (3, 0.2, [0.2, 0.3, 0.5]),
     [(0, 0.04), (0.2, 0.26), (0.5, 0.6)]),
    ("negative coverage", (2, -0.2, None), [(0, 0), (0.5, 0.5)]),
    ("coverage above 1", (2, 1.5, None), [(0, 0.5), (0.5, 1)]),
    ("weights sum below 1", (2, 1, [0.4, 0.1]), [(0, 0.5), (0.5, 1)]),
    ("weights sum above 1", (2, 1, [0.7, 0.6]), [(0, 0.5), (0.5, 1)]),
    ("weights length", (4, 1, [0.4, 0.4, 0.2]),
     [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]),
    ("almost 1", (2, 1, [0.4, 0.5999]), [(0, 0.4), (0.4, 0.9999)]),
]  # fmt: skip
CHOOSE_CASES = [
    (0.2, [(0, 0.5), (0.5, 1)], 0),
    (0.6, [(0, 0.5), (0.5, 1)], 1),
    (0, [(0, 0.5), (0.5, 1)], 0),
    (0.5, [(0, 0.5), (0.5, 1)], 1),
    (0.4, [(0, 0.25), (0.5, 0.75)], -1),
    (0.25, [(0, 0.25), (0.5, 0.75)], -1),
    (0.8, [(0, 0.25), (0.5, 0.75)], -1),
    (0.5, [(0, 0.5), (0.5, 0.5), (0.5, 1)], 2),
]


def test_fnv1a32_matches_the_reference_values() -> None:
    # Fowler/Noll/Vo's published FNV-1a 32-bit test values
    assert fnv1a32("") == 0x811C9DC5
    assert fnv1a32("a") == 0xE40C292C
    assert fnv1a32("foobar") == 0xBF9CF968


@pytest.mark.parametrize(("seed", "value", "version", "expected"), HASH_CASES)
def test_hash_matches_growthbooks_test_vectors(seed, value, version, expected) -> None:
    got = gb_hash(seed, value, version)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(("name", "args", "expected"), BUCKET_CASES)
def test_bucket_ranges_match_growthbooks_test_vectors(name, args, expected) -> None:
    got = bucket_ranges(*args)
    assert np.allclose(np.array(got), np.array(expected), atol=1e-9), name


@pytest.mark.parametrize(("h", "ranges", "expected"), CHOOSE_CASES)
def test_choose_variation_matches_growthbooks_test_vectors(h, ranges, expected) -> None:
    assert choose_variation(h, ranges) == expected


def test_a_user_always_gets_the_same_variant() -> None:
    first = [assign("exp-weights-v7", str(u), [0.5, 0.5]) for u in range(500)]
    again = [assign("exp-weights-v7", str(u), [0.5, 0.5]) for u in range(500)]
    assert first == again
    assert set(first) == {0, 1}


def test_the_split_follows_the_traffic_shares() -> None:
    shares = [0.2, 0.3, 0.5]
    n = 20_000
    got = np.bincount([assign("split", str(u), shares) for u in range(n)], minlength=3)
    # binomial sd at n = 20k is <= 0.0036; 4 sd
    assert np.allclose(got / n, shares, atol=0.015)


def test_partial_coverage_leaves_users_out() -> None:
    got = np.array(
        [assign("cov", str(u), [0.5, 0.5], coverage=0.4) for u in range(20_000)]
    )
    assert (got == -1).mean() == pytest.approx(0.6, abs=0.02)


def test_two_experiments_split_users_independently() -> None:
    a = np.array([assign("exp-a", str(u), [0.5, 0.5]) for u in range(20_000)])
    b = np.array([assign("exp-b", str(u), [0.5, 0.5]) for u in range(20_000)])
    both = ((a == 1) & (b == 1)).mean()
    assert both == pytest.approx(0.25, abs=0.015)
