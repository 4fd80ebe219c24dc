"""Silver: typed, validated, deduplicated tables and the SCD2 movie dimension.

Transforms are pure ``DataFrame -> DataFrame`` functions (tested on small
frames); :func:`build` wires them to Delta tables:

- ``interactions``: MovieLens ratings and app events in one shape, checked by
  :data:`etl.contracts.INTERACTIONS`, deduplicated to the latest event per
  ``event_key`` (the idempotency key), upserted with ``MERGE``;
- ``movies``: SCD Type 2 (``valid_from``, ``valid_to``, ``is_current``) via
  ``MERGE``, enriched from TMDB through ``links.csv`` ids or title + year;
- ``users``: latest row per user (SCD1);
- ``quarantine``: every row that broke a contract, with the rule and raw row.

Incremental: ``_processed_batches`` lists the bronze batches silver has
consumed; a run reads only the others. Every write is keyed (MERGE on the
event key, MERGE on the movie's hash, quarantine replaced per batch), so
re-processing a batch after a crash changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from etl import contracts
from etl.bronze import EVENTS_TABLE, BatchLog, batch_log, bronze_table
from etl.contracts import APP_ID_OFFSET, RAW_COLUMN
from etl.lake import Lake, is_delta, last_output_rows, read_delta, stage
from etl.sources import GENRE_FLAG_COLUMNS
from recommendations.engine.data.movielens import ML1M_OCCUPATIONS, ML100K_GENRES

logger = logging.getLogger(__name__)

STATE_TABLE = "_processed_batches"
LINEAGE = ("_source_file", "_ingested_at", "_batch_id")
_META = {"_dataset", "_layout", "_source_file", "_ingested_at", "_batch_id"}
# Latest wins: by event time, then by ingestion, then file and event id so
# that ties resolve the same way in a full rebuild and an incremental MERGE.
ORDER = ("occurred_at", "_ingested_at", "_source_file", "_event_seq")
# Same regex as the engine's split_title_year: "(1995)" or "(1995-1998)" at
# the end of the title.
YEAR_SUFFIX = r"\s*\((\d{4})(?:[-\x{2013}]\d{0,4})?\)\s*$"
NO_GENRES = "(no genres listed)"
INTERACTION_COLUMNS = (
    "event_key", "user_id", "item_id", "kind", "rating", "value", "ts",
    "occurred_at", "source", "_event_seq", *LINEAGE,
)  # fmt: skip
MOVIE_ATTRIBUTES = (
    "title", "raw_title", "year", "genres", "release_date", "imdb_url", "imdb_id",
    "tmdb_id", "overview", "keywords", "cast", "directors", "tmdb_popularity",
    "vote_average", "vote_count",
)  # fmt: skip


def raw_json(frame: DataFrame) -> Column:
    """The bronze row as JSON, lineage excluded (it has its own columns)."""
    skip = _META | {contracts.CORRUPT_COLUMN}  # a malformed line is its own raw
    return F.to_json(F.struct(*[c for c in frame.columns if c not in skip]))


# ------------------------------------------------------------ interactions


def ratings_to_interactions(ratings: DataFrame) -> DataFrame:
    """Bronze MovieLens ratings -> raw interaction rows (contract not yet applied).

    The event key is (dataset, user, item): MovieLens holds one rating per pair,
    so a newer release of the same data set updates the rating in place.
    """
    corrupt = (
        F.col(contracts.CORRUPT_COLUMN)
        if contracts.CORRUPT_COLUMN in ratings.columns
        else F.lit(None).cast("string")
    )
    return ratings.select(
        F.concat_ws(
            ":", F.lit("ml"), "_dataset", F.trim("user_id"), F.trim("item_id")
        ).alias("event_key"),
        F.col("user_id"),
        F.col("item_id"),
        F.lit("rating").alias("kind"),
        F.col("rating"),
        F.lit(None).cast("double").alias("value"),
        F.col("timestamp").alias("ts"),
        F.lit(None).cast("timestamp").alias("occurred_at"),
        F.concat(F.lit("movielens:"), F.col("_dataset")).alias("source"),
        F.lit(0).cast("bigint").alias("_event_seq"),
        corrupt.alias(contracts.CORRUPT_COLUMN),
        raw_json(ratings).alias(RAW_COLUMN),
        *LINEAGE,
    )


def events_to_interactions(events: DataFrame) -> DataFrame:
    """Bronze app events -> raw interaction rows in the MovieLens id space.

    Users and movies known to MovieLens keep their MovieLens id; the others are
    shifted by ``APP_ID_OFFSET`` (see :mod:`etl.contracts`).
    """
    offset = F.lit(APP_ID_OFFSET).cast("bigint")
    return events.select(
        F.col("idempotency_key").alias("event_key"),
        F.coalesce("movielens_user_id", F.col("user_id") + offset).alias("user_id"),
        F.coalesce("movielens_id", F.col("movie_id") + offset).alias("item_id"),
        F.col("kind"),
        F.when(F.col("kind") == "rating", F.col("value")).alias("rating"),
        F.col("value"),
        F.unix_seconds("occurred_at").alias("ts"),
        F.col("occurred_at"),
        F.col("source"),
        F.col("event_id").alias("_event_seq"),
        F.lit(None).cast("string").alias(contracts.CORRUPT_COLUMN),
        raw_json(events).alias(RAW_COLUMN),
        *LINEAGE,
    )


def finish_interactions(valid: DataFrame) -> DataFrame:
    """Typed rows after the contract: fill event time, fix the column order."""
    return valid.withColumn(
        "occurred_at", F.coalesce("occurred_at", F.timestamp_seconds("ts"))
    ).select(*INTERACTION_COLUMNS)


def dedup_latest(frame: DataFrame, key: str = "event_key") -> DataFrame:
    """Keep the latest row per ``key`` (by :data:`ORDER`, descending)."""
    window = Window.partitionBy(key).orderBy(*[F.col(c).desc() for c in ORDER])
    return (
        frame.withColumn("__n", F.row_number().over(window))
        .where("__n = 1")
        .drop("__n")
    )


def newer_condition(source: str = "s", target: str = "t") -> str:
    """SQL: the source row sorts after the target row by :data:`ORDER`."""
    clauses = []
    for i, col in enumerate(ORDER):
        equal = " AND ".join(f"{source}.{c} = {target}.{c}" for c in ORDER[:i])
        greater = f"{source}.{col} > {target}.{col}"
        clauses.append(f"({equal} AND {greater})" if equal else f"({greater})")
    return " OR ".join(clauses)


# ----------------------------------------------------------------- movies


def split_title(raw: Column) -> tuple[Column, Column]:
    """(title, year) from ``"Toy Story (1995)"``; no year -> (raw, null)."""
    raw = F.trim(raw)
    year = F.regexp_extract(raw, YEAR_SUFFIX, 1)
    has_year = year != F.lit("")
    title = F.when(has_year, F.trim(F.regexp_replace(raw, YEAR_SUFFIX, ""))).otherwise(
        raw
    )
    return title, F.when(has_year, year.cast("int"))


def _genres(frame: DataFrame) -> Column:
    parts = []
    if "genre_flag_00" in frame.columns:
        flags = [
            F.when(F.trim(F.col(c)) == "1", F.lit(name))
            for c, name in zip(GENRE_FLAG_COLUMNS, ML100K_GENRES, strict=True)
            if name != "unknown"  # the engine drops ML-100K's "unknown" flag too
        ]
        parts.append(F.filter(F.array(*flags), lambda g: g.isNotNull()))
    if "genres" in frame.columns:
        split = F.filter(
            F.split(F.coalesce("genres", F.lit("")), r"\|"),
            lambda g: (g != "") & (g != NO_GENRES),
        )
        parts.append(split)
    if not parts:
        return F.array().cast("array<string>")
    if len(parts) == 1:
        return parts[0]
    # Mixed layouts in one table: a row has either flags or a genres string.
    return F.when(F.col("genre_flag_00").isNotNull(), parts[0]).otherwise(parts[1])


def _opt(frame: DataFrame, name: str) -> Column:
    return F.col(name) if name in frame.columns else F.lit(None).cast("string")


def movies_from_bronze(movies: DataFrame, links: DataFrame | None) -> DataFrame:
    """Latest bronze movie row per item, with links -> raw movie rows."""
    latest = Window.partitionBy(F.trim("item_id")).orderBy(
        F.col("_ingested_at").desc(), F.col("_source_file").desc()
    )
    movies = (
        movies.withColumn("__n", F.row_number().over(latest))
        .where("__n = 1")
        .drop("__n")
    )
    out = movies.select(
        F.col("item_id"),
        F.col("raw_title"),
        _genres(movies).alias("genres"),
        F.to_date(
            F.try_to_timestamp(_opt(movies, "release_date"), F.lit("dd-MMM-yyyy"))
        ).alias("release_date"),
        F.nullif(F.trim(_opt(movies, "imdb_url")), F.lit("")).alias("imdb_url"),
        _opt(movies, contracts.CORRUPT_COLUMN).alias(contracts.CORRUPT_COLUMN),
        raw_json(movies).alias(RAW_COLUMN),
        *LINEAGE,
    )
    if links is None:
        return out.withColumns(
            {
                "imdb_id": F.lit(None).cast("string"),
                "tmdb_id": F.lit(None).cast("string"),
            }
        )
    latest_link = Window.partitionBy("__item").orderBy(F.col("_ingested_at").desc())
    links = (
        links.withColumn("__item", F.trim("item_id"))
        .withColumn("__n", F.row_number().over(latest_link))
        .where("__n = 1")
        .select("__item", "imdb_id", "tmdb_id")
    )
    return out.join(links, F.trim(out.item_id) == links["__item"], "left").drop(
        "__item"
    )


def finish_movies(valid: DataFrame) -> DataFrame:
    title, year = split_title(F.col("raw_title"))
    return valid.withColumns({"title": title, "year": year})


def _json_names(col: str) -> Column:
    """``[{"id": 28, "name": "Action"}]`` -> ``["Action"]`` (TMDB 5000 columns)."""
    parsed = F.from_json(F.col(col), "array<struct<name:string>>")
    return F.transform(F.coalesce(parsed, F.array()), lambda x: x["name"])


def _pipe_list(col: Column) -> Column:
    return F.filter(
        F.split(F.coalesce(col, F.lit("")), r"\|"), lambda x: F.trim(x) != ""
    )


def tmdb_from_bronze(
    movies: DataFrame | None, people: DataFrame | None
) -> DataFrame | None:
    """Bronze TMDB files -> raw TMDB rows keyed by ``tmdb_id``.

    ``tmdb_5000_movies.csv`` gives overview, votes, keywords; the cast/director
    file gives people (and keywords for films the first file lacks).
    """
    if movies is None and people is None:
        return None
    frames = []
    if movies is not None:
        frames.append(
            movies.select(
                F.col("tmdb_id"),
                F.col("title").alias("tmdb_title"),
                F.substring("release_date", 1, 4).alias("tmdb_year"),
                "overview",
                F.col("popularity").alias("tmdb_popularity"),
                "vote_average",
                "vote_count",
                F.to_json(_json_names("genres")).alias("tmdb_genres"),
                F.to_json(_json_names("keywords")).alias("tmdb_keywords"),
                F.lit(None).cast("string").alias("cast"),
                F.lit(None).cast("string").alias("director"),
                _opt(movies, contracts.CORRUPT_COLUMN).alias(contracts.CORRUPT_COLUMN),
                raw_json(movies).alias(RAW_COLUMN),
                *LINEAGE,
            )
        )
    if people is not None:
        frames.append(
            people.select(
                F.col("tmdb_id"),
                F.col("original_title").alias("tmdb_title"),
                F.lit(None).cast("string").alias("tmdb_year"),
                *[F.lit(None).cast("string").alias(c) for c in (
                    "overview", "tmdb_popularity", "vote_average", "vote_count")],
                F.to_json(_pipe_list(F.col("genres"))).alias("tmdb_genres"),
                F.to_json(_pipe_list(F.col("keywords"))).alias("tmdb_keywords"),
                "cast",
                "director",
                _opt(people, contracts.CORRUPT_COLUMN).alias(contracts.CORRUPT_COLUMN),
                raw_json(people).alias(RAW_COLUMN),
                *LINEAGE,
            )
        )  # fmt: skip
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def combine_tmdb(valid: DataFrame) -> DataFrame:
    """One row per TMDB id: the TMDB-5000 fields plus people, latest first."""
    arr = "array<string>"
    latest = Window.partitionBy("tmdb_id").orderBy(F.col("_ingested_at").desc())
    frame = valid.withColumns(
        {
            "__movies": F.col("tmdb_year").isNotNull() | F.col("overview").isNotNull(),
            "__n": F.row_number().over(latest),
        }
    )

    def pick(col: str, when: Column) -> Column:
        return F.max_by(F.when(when, F.col(col)), F.when(when, F.col("_ingested_at")))

    movie_row = F.col("__movies")
    people_row = ~F.col("__movies")
    return frame.groupBy("tmdb_id").agg(
        F.coalesce(pick("tmdb_title", movie_row), pick("tmdb_title", people_row)).alias(
            "tmdb_title"
        ),
        pick("tmdb_year", movie_row).alias("tmdb_year"),
        pick("overview", movie_row).alias("overview"),
        pick("tmdb_popularity", movie_row).alias("tmdb_popularity"),
        pick("vote_average", movie_row).alias("vote_average"),
        pick("vote_count", movie_row).alias("vote_count"),
        F.coalesce(
            F.from_json(pick("tmdb_keywords", movie_row), arr),
            F.from_json(pick("tmdb_keywords", people_row), arr),
        ).alias("keywords"),
        _pipe_list(pick("cast", people_row)).alias("cast"),
        _pipe_list(pick("director", people_row)).alias("directors"),
    )


def title_key(title: Column) -> Column:
    """Normalised title for matching: ``"Usual Suspects, The"`` -> ``usualsuspects``.

    MovieLens moves articles to the end ("Shawshank Redemption, The"); TMDB
    keeps them in front. Both forms drop the article, case and punctuation.
    """
    lowered = F.lower(F.trim(title))
    no_suffix = F.regexp_replace(
        lowered, r",\s*(the|a|an|les|la|le|il|el|das|der|die)$", ""
    )
    no_prefix = F.regexp_replace(no_suffix, r"^(the|a|an)\s+", "")
    return F.regexp_replace(no_prefix, r"[^\p{L}\p{N}]", "")


def match_tmdb(movies: DataFrame, tmdb: DataFrame | None) -> DataFrame:
    """Enrich movies with TMDB fields: by ``tmdb_id`` when known, else title+year.

    A title+year match must be unambiguous in TMDB up to vote count: the most
    voted film with that normalised title and year wins (remakes share titles,
    not years).
    """
    extra = {
        "overview": "string", "keywords": "array<string>", "cast": "array<string>",
        "directors": "array<string>", "tmdb_popularity": "double",
        "vote_average": "double", "vote_count": "bigint",
    }  # fmt: skip
    if tmdb is None:
        return movies.withColumns({k: F.lit(None).cast(v) for k, v in extra.items()})
    by_title = (
        tmdb.where(F.col("tmdb_year").isNotNull())
        .withColumn("__key", title_key(F.col("tmdb_title")))
        .withColumn(
            "__n",
            F.row_number().over(
                Window.partitionBy("__key", "tmdb_year").orderBy(
                    F.col("vote_count").desc_nulls_last(), "tmdb_id"
                )
            ),
        )
        .where("__n = 1")
        .select(
            "__key",
            F.col("tmdb_year").alias("__year"),
            F.col("tmdb_id").alias("__title_tmdb_id"),
        )
    )
    keyed = movies.withColumn("__key", title_key(F.col("title")))
    keyed = keyed.join(
        by_title,
        (keyed["__key"] == by_title["__key"]) & (keyed["year"] == by_title["__year"]),
        "left",
    ).drop(by_title["__key"])
    keyed = keyed.withColumn(
        "tmdb_id", F.coalesce(F.col("tmdb_id"), F.col("__title_tmdb_id"))
    ).drop("__title_tmdb_id", "__year", "__key")
    fields = tmdb.select("tmdb_id", *extra)
    return keyed.join(fields, "tmdb_id", "left")


def movie_versions(movies: DataFrame) -> DataFrame:
    """Movie attributes plus a hash of them (what SCD2 compares)."""
    attrs = movies.select("item_id", *MOVIE_ATTRIBUTES)
    return attrs.withColumn(
        "attr_hash",
        F.sha2(F.to_json(F.struct(*[F.col(c) for c in MOVIE_ATTRIBUTES])), 256),
    )


def scd2_merge(
    spark: SparkSession, path: str, versions: DataFrame, effective: Column
) -> None:
    """Apply one snapshot of movie versions to the SCD2 table at ``path``.

    Changed movies: the current row is closed (``valid_to``, ``is_current``
    false) and a new row inserted; new movies are inserted; unchanged ones are
    left alone. One ``MERGE``, so readers never see a half-applied snapshot.
    """
    from delta.tables import DeltaTable

    versions = versions.withColumn("valid_from", effective)
    if not is_delta(spark, path):
        versions.withColumns(
            {"valid_to": F.lit(None).cast("timestamp"), "is_current": F.lit(True)}
        ).write.format("delta").save(path)
        return
    target = DeltaTable.forPath(spark, path)
    current = (
        target.toDF()
        .where("is_current")
        .select("item_id", F.col("attr_hash").alias("__old_hash"))
    )
    changed = (
        versions.join(current, "item_id")
        .where(F.col("attr_hash") != F.col("__old_hash"))
        .drop("__old_hash")
        .withColumn("merge_key", F.lit(None).cast("bigint"))
    )
    staged = versions.withColumn("merge_key", F.col("item_id")).unionByName(changed)
    insert = {c: f"s.{c}" for c in ("item_id", *MOVIE_ATTRIBUTES, "attr_hash")}
    insert.update(valid_from="s.valid_from", valid_to="null", is_current="true")
    (
        target.alias("t")
        .merge(staged.alias("s"), "t.item_id = s.merge_key AND t.is_current")
        .whenMatchedUpdate(
            condition="t.attr_hash <> s.attr_hash",
            set={"is_current": "false", "valid_to": "s.valid_from"},
        )
        .whenNotMatchedInsert(values=insert)
        .execute()
    )


# ------------------------------------------------------------------ users


def users_from_bronze(users: DataFrame) -> DataFrame:
    """Latest bronze row per user; ML-1M occupation codes become names."""
    latest = Window.partitionBy(F.trim("user_id")).orderBy(
        F.col("_ingested_at").desc(), F.col("_source_file").desc()
    )
    users = (
        users.withColumn("__n", F.row_number().over(latest))
        .where("__n = 1")
        .drop("__n")
    )
    occupation = _opt(users, "occupation")
    if "occupation_code" in users.columns:
        names = F.array(*[F.lit(o) for o in ML1M_OCCUPATIONS])
        code = F.trim("occupation_code").try_cast("int")
        occupation = F.coalesce(occupation, F.get(names, code))
    return users.select(
        "user_id",
        "age",
        "gender",
        occupation.alias("occupation"),
        "zip",
        _opt(users, contracts.CORRUPT_COLUMN).alias(contracts.CORRUPT_COLUMN),
        raw_json(users).alias(RAW_COLUMN),
        *LINEAGE,
    )


# ---------------------------------------------------------------- the layer


@dataclass
class SilverResult:
    batches: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    stages: list[dict[str, object]] = field(default_factory=list)


def pending_batches(
    spark: SparkSession, lake: Lake, log: BatchLog | None = None
) -> list[str]:
    """Committed bronze batches silver has not processed yet, oldest first."""
    log = log or batch_log(spark, lake)
    done = read_delta(spark, lake.path("silver", STATE_TABLE))
    processed = set() if done is None else {r[0] for r in done.collect()}
    return [b for b in log.batches if b not in processed]


def _write_quarantine(
    spark: SparkSession, lake: Lake, frames: list[DataFrame], batches: list[str]
) -> int:
    path = lake.path("silver", "quarantine")
    frame = frames[0]
    for extra in frames[1:]:
        frame = frame.unionByName(extra)
    frame = frame.withColumn("_quarantined_at", F.current_timestamp())
    writer = frame.write.format("delta").partitionBy("table")
    if is_delta(spark, path):
        # Replacing the batches' rows (not appending) keeps a re-run idempotent.
        ids = ", ".join(f"'{b}'" for b in batches)
        writer = writer.mode("overwrite").option(
            "replaceWhere", f"_batch_id IN ({ids})"
        )
    writer.save(path)
    return last_output_rows(spark, path)


def _upsert_interactions(spark: SparkSession, path: str, frame: DataFrame) -> None:
    from delta.tables import DeltaTable

    if not is_delta(spark, path):
        frame.write.format("delta").save(path)
        return
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(frame.alias("s"), "t.event_key = s.event_key")
        .whenMatchedUpdateAll(condition=newer_condition())
        .whenNotMatchedInsertAll()
        .execute()
    )


def build(spark: SparkSession, lake: Lake) -> SilverResult:
    """Process every committed bronze batch silver has not seen yet."""
    result = SilverResult()
    log = batch_log(spark, lake)
    pending = pending_batches(spark, lake, log)
    committed = log.batches
    result.batches = pending
    if not pending:
        logger.info("silver is up to date; nothing to process")
        return result
    quarantine: list[DataFrame] = []

    # Interactions: MovieLens ratings and app events, new batches only.
    parts = []
    ratings = bronze_table(spark, lake, "ml_ratings", pending)
    if ratings is not None:
        parts.append(ratings_to_interactions(ratings))
    events = bronze_table(spark, lake, EVENTS_TABLE, pending)
    if events is not None:
        parts.append(events_to_interactions(events))
    if parts:
        raw = parts[0]
        for part in parts[1:]:
            raw = raw.unionByName(part)
        valid, bad = contracts.enforce(raw, contracts.INTERACTIONS)
        quarantine.append(bad)
        path = lake.path("silver", "interactions")
        with stage("silver.interactions", batches=len(pending)) as info:
            _upsert_interactions(spark, path, dedup_latest(finish_interactions(valid)))
            info["rows"] = last_output_rows(spark, path)
        result.stages.append(info)
        result.rows["interactions"] = int(info["rows"])  # type: ignore[arg-type]

    # Movies: one SCD2 snapshot per batch that changed movie metadata, in order.
    movie_tables = {"ml_movies", "ml_links", "tmdb_movies", "tmdb_people"}
    for batch_id in log.with_tables(pending, movie_tables):
        upto = committed[: committed.index(batch_id) + 1]
        movies = bronze_table(spark, lake, "ml_movies", upto)
        if movies is None:
            continue
        links = bronze_table(spark, lake, "ml_links", upto)
        raw_movies = movies_from_bronze(movies, links)
        valid, bad = contracts.enforce(raw_movies, contracts.MOVIES)
        # Only this batch's own bad rows go to quarantine; older ones are
        # there already from their own batch.
        quarantine.append(bad.where(F.col("_batch_id") == batch_id))
        tmdb_raw = tmdb_from_bronze(
            bronze_table(spark, lake, "tmdb_movies", upto),
            bronze_table(spark, lake, "tmdb_people", upto),
        )
        tmdb = None
        if tmdb_raw is not None:
            tmdb_valid, tmdb_bad = contracts.enforce(tmdb_raw, contracts.TMDB)
            quarantine.append(tmdb_bad.where(F.col("_batch_id") == batch_id))
            tmdb = combine_tmdb(tmdb_valid)
        versions = movie_versions(match_tmdb(finish_movies(valid), tmdb))
        effective = F.lit(log.ingested_at[batch_id]).cast("timestamp")
        path = lake.path("silver", "movies")
        with stage("silver.movies", batch=batch_id) as info:
            scd2_merge(spark, path, versions, effective)
            info["rows"] = last_output_rows(spark, path)
        result.stages.append(info)
        result.rows["movies"] = result.rows.get("movies", 0) + int(info["rows"])  # type: ignore[arg-type]

    users = bronze_table(spark, lake, "ml_users", committed)
    if users is not None and log.with_tables(pending, {"ml_users"}):
        valid, bad = contracts.enforce(users_from_bronze(users), contracts.USERS)
        quarantine.append(bad.where(F.col("_batch_id").isin(pending)))
        path = lake.path("silver", "users")
        with stage("silver.users") as info:
            valid.select(
                "user_id", "age", "gender", "occupation", "zip", *LINEAGE
            ).write.format("delta").mode("overwrite").save(path)
            info["rows"] = last_output_rows(spark, path)
        result.stages.append(info)
        result.rows["users"] = int(info["rows"])  # type: ignore[arg-type]

    if quarantine:
        with stage("silver.quarantine") as info:
            info["rows"] = _write_quarantine(spark, lake, quarantine, pending)
        result.stages.append(info)
        result.quarantined = int(info["rows"])  # type: ignore[arg-type]

    spark.createDataFrame([(b,) for b in pending], "batch_id string").write.format(
        "delta"
    ).mode("append").save(lake.path("silver", STATE_TABLE))
    return result
