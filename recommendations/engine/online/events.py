"""What the online learner is fed: one event with the history before it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recommendations.engine.data.interactions import History, Interactions


@dataclass(frozen=True, eq=False)
class OnlineEvent:
    """One user event, as the coordinator applies it.

    ``history`` holds the user's items *before* this event (dense item
    indices, oldest first), ``item`` the item of the event. ``positive``:
    a consumption / like (it updates the feature tables and is a positive
    example); ``False``: an explicit negative (a negative example only).
    ``history_timestamps`` (same length as ``history``, seconds) set the
    user's "now" for the recency features; ``user`` is the dense index of a
    training user (LightGCN's layer-0 vector) or ``None``.
    """

    history: np.ndarray
    item: int
    timestamp: float
    positive: bool = True
    history_timestamps: np.ndarray | None = None
    user: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "history", np.asarray(self.history, dtype=np.int64))
        if self.history_timestamps is not None:
            times = np.asarray(self.history_timestamps)
            if len(times) != len(self.history):
                raise ValueError("history_timestamps must match history in length")
            object.__setattr__(self, "history_timestamps", times)

    def as_history(self) -> History:
        """The history before the event, as the models score it."""
        return History(self.history, self.history_timestamps, user=self.user)


def stream_events(data: Interactions, mask: np.ndarray) -> list[OnlineEvent]:
    """The events of ``data`` where ``mask`` holds, in time order (ties: user,
    then the container's own order, i.e. the engine's tie rule of
    :mod:`~recommendations.engine.data.ordering`), each with the user's
    earlier events of ``data`` as history.

    ``data`` must hold every event up to the last streamed one (training and
    stream); histories are views into its arrays, not copies.
    """
    idx = np.flatnonzero(mask)
    order = np.lexsort((idx, data.user_index[idx], data.timestamps[idx]))
    ptr = data.user_ptr
    out = []
    for e in idx[order]:
        u = int(data.user_index[e])
        start = int(ptr[u])
        out.append(
            OnlineEvent(
                data.item_index[start:e],
                int(data.item_index[e]),
                float(data.timestamps[e]),
                history_timestamps=data.timestamps[start:e],
                user=u,
            )
        )
    return out
