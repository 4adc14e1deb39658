"""The clean run every fault test compares with: the committed sample replayed once into a
fresh stack on the selected broker, with nothing broken, computed once per session."""

from __future__ import annotations

import os
import random
import time

import pytest

from . import support


@pytest.fixture(scope="session")
def clean_figures(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    stack = support.start(tmp_path_factory.mktemp("clean-run"))
    try:
        started = time.monotonic()
        statuses = support.replay_sample(stack.connector_url)
        assert dict(statuses) == {200: support.SAMPLE_DELIVERIES}
        support.settle(stack)
        figures = support.snapshot(stack)
        print(f"[clean run: {support.summary(figures)}; {time.monotonic() - started:.1f}s]")
    finally:
        support.stop(stack)
    assert all(figures.values()), "the clean run stored no figures"
    return figures


@pytest.fixture
def rng() -> random.Random:
    """Random kill points, reproducible: XSELL_FAULT_SEED=<n> repeats a run."""
    seed = int(os.environ.get("XSELL_FAULT_SEED") or random.SystemRandom().randrange(10**6))
    print(f"[fault seed: {seed}]")
    return random.Random(seed)
