from __future__ import annotations

import pytest

from conftest import require_redis
from experiments import selectors
from experiments.buffer import (
    LIST,
    LOCK,
    get_impression_buffer,
    reset_impression_buffers,
)


@pytest.fixture(autouse=True)
def empty_buffer():
    """Each test starts with an empty impression buffer on the test Redis."""
    require_redis()
    reset_impression_buffers()
    buffer = get_impression_buffer()
    buffer.redis.delete(LIST, LOCK)
    selectors.running_experiments_forget()
    yield buffer
    buffer.redis.delete(LIST, LOCK)
    reset_impression_buffers()
    selectors.running_experiments_forget()
