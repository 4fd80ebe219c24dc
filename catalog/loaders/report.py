"""What a load did: rows read, loaded, skipped (with why), and progress."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

MAX_EXAMPLES = 20


@dataclass
class TableReport:
    read: int = 0
    loaded: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def skip(self, reason: str, example: str | None = None, n: int = 1) -> None:
        self.skipped[reason] += n
        if example and len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{reason}: {example}")

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


@dataclass
class LoadReport:
    """One report per command; ``tables`` in the order they were loaded."""

    name: str
    source: str = ""
    tables: dict[str, TableReport] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def table(self, name: str) -> TableReport:
        return self.tables.setdefault(name, TableReport())

    def lines(self) -> list[str]:
        out = [f"{self.name}: source {self.source}" if self.source else self.name]
        for name, t in self.tables.items():
            out.append(
                f"  {name}: read {t.read}, loaded {t.loaded}, skipped {t.skipped_total}"
            )
            for reason, n in t.skipped.most_common():
                out.append(f"    skipped {n}: {reason}")
            for example in t.examples:
                out.append(f"      e.g. {example}")
        out.extend(f"  {note}" for note in self.notes)
        out.append(f"  took {self.seconds:.1f}s")
        return out


class Progress:
    """A log line every few seconds with rows done, rate and ETA."""

    def __init__(self, what: str, total: int, every: float = 3.0) -> None:
        self.what, self.total, self.every = what, total, every
        self.started = self.last = time.monotonic()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every and done < self.total:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-9)
        eta = (self.total - done) / rate if rate else 0.0
        logger.info(
            "%s: %d/%d rows (%.0f rows/s, ETA %.0fs)",
            self.what,
            done,
            self.total,
            rate,
            eta,
        )
