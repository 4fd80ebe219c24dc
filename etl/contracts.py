"""Data contracts of the silver tables, declared in one place and enforced.

A contract lists, per column, the Spark type, whether nulls are allowed and
an allowed range / pattern / value set; table rules cover conditions between
columns. :func:`enforce` casts a frame of *raw* values to the contract's
types with ``try_cast`` (a value that does not cast is a violation, not a
crash), evaluates every rule, and splits the frame into the rows that pass
and quarantine rows holding the first rule that failed, every rule that
failed and the raw row as JSON. Nothing is dropped silently and one bad row
never fails the batch.

Id namespaces: MovieLens ids are used as they are; app users and movies that
carry no MovieLens id are shifted by :data:`APP_ID_OFFSET`, so both live in
one int64 id space without collisions (MovieLens ids stay far below 10^9).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

APP_ID_OFFSET = 1_000_000_000
EVENT_KINDS = ("rating", "click", "watch", "watchlist")
RAW_COLUMN = "_raw"
"""Column holding the bronze row as JSON; carried into the quarantine table."""
CORRUPT_COLUMN = "_corrupt_record"
"""Spark's malformed-line column of the bronze text readers."""


@dataclass(frozen=True)
class ColumnContract:
    """One column: type, nullability and the values it may take."""

    name: str
    type: str
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    pattern: str | None = None
    allowed: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TableRule:
    """A condition over several columns; ``violation`` is a SQL expression."""

    name: str
    violation: str


@dataclass(frozen=True)
class Contract:
    table: str
    columns: tuple[ColumnContract, ...]
    rules: tuple[TableRule, ...] = field(default_factory=tuple)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


INTERACTIONS = Contract(
    "interactions",
    (
        ColumnContract("event_key", "string", nullable=False),
        ColumnContract("user_id", "bigint", nullable=False, min=0),
        ColumnContract("item_id", "bigint", nullable=False, min=0),
        ColumnContract("kind", "string", nullable=False, allowed=EVENT_KINDS),
        # MovieLens uses 1-5 (100K/1M) and 0.5-5 in half stars (CSV releases).
        ColumnContract("rating", "double", min=0.5, max=5.0),
        # 1995-01-01 .. 2100-01-01: earlier is before MovieLens existed, later
        # is a clock or unit error (milliseconds instead of seconds).
        ColumnContract(
            "ts", "bigint", nullable=False, min=788_918_400, max=4_102_444_800
        ),
    ),
    (
        TableRule("malformed_row", f"{CORRUPT_COLUMN} IS NOT NULL"),
        TableRule("rating_without_value", "kind = 'rating' AND rating IS NULL"),
    ),
)

MOVIES = Contract(
    "movies",
    (
        ColumnContract("item_id", "bigint", nullable=False, min=0),
        ColumnContract("raw_title", "string", nullable=False, pattern=r"\S"),
        ColumnContract("imdb_id", "bigint", min=1),
        ColumnContract("tmdb_id", "bigint", min=1),
    ),
    (TableRule("malformed_row", f"{CORRUPT_COLUMN} IS NOT NULL"),),
)

USERS = Contract(
    "users",
    (
        ColumnContract("user_id", "bigint", nullable=False, min=0),
        ColumnContract("age", "int", min=1, max=120),
        ColumnContract("gender", "string", allowed=("M", "F")),
        ColumnContract("occupation", "string"),
        ColumnContract("zip", "string"),
    ),
    (TableRule("malformed_row", f"{CORRUPT_COLUMN} IS NOT NULL"),),
)

TMDB = Contract(
    "tmdb",
    (
        ColumnContract("tmdb_id", "bigint", nullable=False, min=1),
        ColumnContract("tmdb_title", "string"),
        ColumnContract("tmdb_year", "int", min=1870, max=2100),
        ColumnContract("overview", "string"),
        ColumnContract("tmdb_popularity", "double", min=0),
        ColumnContract("vote_average", "double", min=0, max=10),
        ColumnContract("vote_count", "bigint", min=0),
        ColumnContract("tmdb_genres", "string"),
        ColumnContract("tmdb_keywords", "string"),
    ),
    (TableRule("malformed_row", f"{CORRUPT_COLUMN} IS NOT NULL"),),
)

CONTRACTS = {c.table: c for c in (INTERACTIONS, MOVIES, USERS, TMDB)}


def _column_rules(col: ColumnContract) -> list[tuple[str, Column]]:
    raw = F.col(f"`__raw_{col.name}`")
    typed = F.col(col.name)
    raw_present = raw.isNotNull() & (F.trim(raw.cast("string")) != F.lit(""))
    rules: list[tuple[str, Column]] = [
        (f"{col.name}:type:{col.type}", raw_present & typed.isNull())
    ]
    if not col.nullable:
        rules.append((f"{col.name}:not_null", typed.isNull()))
    if col.min is not None:
        rules.append((f"{col.name}:min:{col.min:g}", typed < F.lit(col.min)))
    if col.max is not None:
        rules.append((f"{col.name}:max:{col.max:g}", typed > F.lit(col.max)))
    if col.pattern is not None:
        rules.append((f"{col.name}:pattern", ~typed.rlike(col.pattern)))
    if col.allowed is not None:
        rules.append((f"{col.name}:allowed", ~typed.isin(*col.allowed)))
    return rules


def enforce(frame: DataFrame, contract: Contract) -> tuple[DataFrame, DataFrame]:
    """Split ``frame`` into (valid rows, quarantine rows).

    ``frame`` holds the contract's columns with raw values (usually strings),
    :data:`RAW_COLUMN` and optionally :data:`CORRUPT_COLUMN`; any other
    columns pass through. Valid rows come back with the columns cast to the
    contract's types. Quarantine rows have ``table, rule, failed_rules, raw``
    plus the lineage columns ``_source_file, _batch_id`` when present.
    """
    if CORRUPT_COLUMN not in frame.columns:
        frame = frame.withColumn(CORRUPT_COLUMN, F.lit(None).cast("string"))
    missing = [c for c in contract.names if c not in frame.columns]
    if missing:
        raise ValueError(f"{contract.table}: frame lacks contract columns {missing}")
    for col in contract.columns:
        frame = frame.withColumn(f"__raw_{col.name}", F.col(col.name))
        source = F.col(col.name)
        if col.type != "string":
            # Strings like " 5" come from hand-edited files; trimming first
            # keeps them valid instead of quarantining whitespace.
            source = F.trim(source.cast("string"))
        frame = frame.withColumn(col.name, source.try_cast(col.type))
    # A malformed line explains every other failure of its row, so it is
    # checked first and reported as *the* rule.
    table_rules = [(rule.name, F.expr(rule.violation)) for rule in contract.rules]
    rules = [r for r in table_rules if r[0] == "malformed_row"]
    rules += [r for col in contract.columns for r in _column_rules(col)]
    rules += [r for r in table_rules if r[0] != "malformed_row"]
    failed = F.filter(
        F.array(*[F.when(expr, F.lit(name)) for name, expr in rules]),
        lambda x: x.isNotNull(),
    )
    checked = frame.withColumn("__failed", failed)
    scratch = [f"__raw_{c.name}" for c in contract.columns] + ["__failed"]
    valid = checked.where(F.size("__failed") == 0).drop(*scratch, CORRUPT_COLUMN)
    lineage = [c for c in ("_source_file", "_batch_id") if c in frame.columns]
    quarantine = checked.where(F.size("__failed") > 0).select(
        F.lit(contract.table).alias("table"),
        F.col("__failed")[0].alias("rule"),
        F.col("__failed").alias("failed_rules"),
        F.coalesce(F.col(CORRUPT_COLUMN), F.col(RAW_COLUMN)).alias("raw"),
        *lineage,
    )
    return valid, quarantine
