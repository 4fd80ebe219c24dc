"""Gold: the tables models consume.

- ``user_sequences``: per user, time-ordered ``item_ids``, ``timestamps``,
  ``ratings``, ``kinds``; a user's events with equal timestamps follow a
  seeded random order (:data:`TIE_SEED`; never the item-id order, see
  :func:`user_sequences`);
- ``item_features``: genres, year, people, keywords, ``text`` for TF-IDF,
  ``popularity`` (share of events) and a log-popularity ``propensity``;
- ``user_features``: activity, mean rating, genre affinity, demographics;
- ``item_cooccurrence``: per item its top-k neighbours by co-occurrence within
  a window of consecutive events.

Gold is rebuilt from silver on every run that changed silver: popularity,
propensities and co-occurrence scores are normalised over *all* events, so a
single new event changes rows of items it never touched. Silver is where the
incremental work happens (only new bronze batches are parsed, validated and
merged); a gold rebuild reads silver's compact Parquet, not the raw files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from etl.lake import Lake, last_output_rows, read_delta, stage

logger = logging.getLogger(__name__)

COOCCURRENCE_WINDOW = 5
"""Pairs are counted between an event and the next ``COOCCURRENCE_WINDOW``.

All pairs of a history cost O(L^2) per user (10^9 pairs at 10M events);
a short window costs O(L * W) and keeps the sequential signal item-to-item
recommenders use.
"""
COOCCURRENCE_TOP_K = 50
TIE_SEED = 0
"""Seed of the order of a user's same-second events in ``user_sequences``
(the engine's default tie seed, ``recommendations.engine.data.ordering``)."""


def user_sequences(interactions: DataFrame, *, tie_seed: int = TIE_SEED) -> DataFrame:
    """One row per user with aligned, time-ordered arrays.

    Events with equal timestamps (a same-second burst, whose true order is
    lost) are ordered by ``xxhash64(tie_seed, user_id, item_id)``: a seeded
    random order, the same on every rebuild, never the item-id order (which
    would teach sequence models that the next item has a larger id). The
    engine's gold reader does not rely on this order: it re-orders the events
    by its own rule (``recommendations.engine.data.ordering``), so both sides
    agree on a random order without sharing a hash function.
    """
    events = F.struct(
        F.col("ts").alias("ts"),
        F.xxhash64(F.lit(tie_seed), "user_id", "item_id").alias("tie"),
        F.col("item_id").alias("item_id"),
        F.col("rating").alias("rating"),
        F.col("kind").alias("kind"),
    )
    grouped = interactions.groupBy("user_id").agg(
        F.array_sort(F.collect_list(events)).alias("__events")
    )
    return grouped.select(
        "user_id",
        F.col("__events.item_id").alias("item_ids"),
        F.col("__events.ts").alias("timestamps"),
        F.col("__events.rating").alias("ratings"),
        F.col("__events.kind").alias("kinds"),
        F.size("__events").alias("n_events"),
        F.element_at("__events.ts", 1).alias("first_ts"),
        F.element_at("__events.ts", -1).alias("last_ts"),
    )


def item_popularity(interactions: DataFrame) -> DataFrame:
    """Events, users, mean rating, popularity share and propensity per item.

    ``propensity = log1p(n) / log1p(max n)``: exposure grows with popularity
    but sub-linearly, which keeps inverse-propensity weights of tail items
    bounded (a raw count ratio gives 1/p in the thousands).
    """
    counts = interactions.groupBy("item_id").agg(
        F.count("*").alias("n_interactions"),
        F.countDistinct("user_id").alias("n_users"),
        F.avg("rating").alias("mean_rating"),
    )
    totals = counts.agg(
        F.sum("n_interactions").alias("__total"), F.max("n_interactions").alias("__max")
    )
    return counts.crossJoin(F.broadcast(totals)).select(
        "item_id",
        "n_interactions",
        "n_users",
        "mean_rating",
        (F.col("n_interactions") / F.col("__total")).alias("popularity"),
        F.log1p("n_interactions").alias("log_popularity"),
        (F.log1p("n_interactions") / F.log1p("__max")).alias("propensity"),
    )


def item_features(movies: DataFrame | None, interactions: DataFrame) -> DataFrame:
    """Current movie attributes joined with popularity; every item with events
    or a movie row appears once."""
    popularity = item_popularity(interactions)
    if movies is None:
        return popularity.withColumns(
            {
                "title": F.lit(None).cast("string"),
                "year": F.lit(None).cast("int"),
                "genres": F.array().cast("array<string>"),
                "text": F.lit(""),
            }
        )
    current = movies.where("is_current").drop("valid_from", "valid_to", "is_current")
    empty = F.array().cast("array<string>")
    text = F.concat_ws(
        " ",
        F.col("title"),
        F.array_join(F.coalesce("genres", empty), " "),
        F.array_join(F.coalesce("keywords", empty), " "),
        F.coalesce("overview", F.lit("")),
        F.array_join(F.coalesce("directors", empty), " "),
        F.array_join(F.coalesce("cast", empty), " "),
    )
    joined = current.withColumn("text", F.trim(text)).join(
        popularity, "item_id", "full"
    )
    return joined.fillna(
        {"n_interactions": 0, "n_users": 0, "popularity": 0.0, "log_popularity": 0.0,
         "propensity": 0.0}
    )  # fmt: skip


def user_features(
    interactions: DataFrame, movies: DataFrame | None, users: DataFrame | None
) -> DataFrame:
    """Activity, rating habits, genre affinity and demographics per user."""
    activity = interactions.groupBy("user_id").agg(
        F.count("*").alias("n_events"),
        F.count("rating").alias("n_ratings"),
        F.avg("rating").alias("mean_rating"),
        F.min("ts").alias("first_ts"),
        F.max("ts").alias("last_ts"),
        F.countDistinct(F.to_date("occurred_at")).alias("active_days"),
    )
    if movies is not None:
        genres = movies.where("is_current").select(
            "item_id", F.explode("genres").alias("genre")
        )
        per_genre = (
            interactions.select("user_id", "item_id")
            .join(genres, "item_id")
            .groupBy("user_id", "genre")
            .count()
        )
        affinity = (
            per_genre.join(activity.select("user_id", "n_events"), "user_id")
            .groupBy("user_id")
            .agg(
                F.map_from_entries(
                    F.array_sort(
                        F.collect_list(
                            F.struct("genre", F.col("count") / F.col("n_events"))
                        )
                    )
                ).alias("genre_affinity")
            )
        )
        activity = activity.join(affinity, "user_id", "left")
    else:
        activity = activity.withColumn(
            "genre_affinity", F.lit(None).cast("map<string,double>")
        )
    if users is not None:
        activity = activity.join(
            users.select("user_id", "age", "gender", "occupation"), "user_id", "left"
        )
    else:
        activity = activity.withColumns(
            {
                "age": F.lit(None).cast("int"),
                "gender": F.lit(None).cast("string"),
                "occupation": F.lit(None).cast("string"),
            }
        )
    return activity


def item_cooccurrence(
    sequences: DataFrame,
    *,
    window: int = COOCCURRENCE_WINDOW,
    top_k: int = COOCCURRENCE_TOP_K,
) -> DataFrame:
    """Top-k neighbours per item by co-occurrence within ``window`` events.

    ``score = count / sqrt(n_a * n_b)`` (cosine over pair counts) so that two
    blockbusters do not crowd out every niche neighbour; ``n`` is how often an
    item takes part in any pair.
    """
    pairs = sequences.select(
        F.explode(
            F.flatten(
                F.transform(
                    F.sequence(F.lit(1), F.size("item_ids")),
                    lambda i: F.transform(
                        F.slice("item_ids", i + 1, window),
                        lambda b: F.struct(
                            F.element_at("item_ids", i).alias("a"), b.alias("b")
                        ),
                    ),
                )
            )
        ).alias("p")
    ).where(F.col("p.a") != F.col("p.b"))
    # Count each unordered pair once, then mirror: half the shuffle volume.
    undirected = (
        pairs.select(
            F.least("p.a", "p.b").alias("a"), F.greatest("p.a", "p.b").alias("b")
        )
        .groupBy("a", "b")
        .count()
    )
    both = undirected.unionByName(
        undirected.select(F.col("b").alias("a"), F.col("a").alias("b"), "count")
    )
    degree = both.groupBy("a").agg(F.sum("count").alias("n"))
    scored = (
        both.join(degree, "a")
        .join(degree.select(F.col("a").alias("b"), F.col("n").alias("n_b")), "b")
        .withColumn("score", F.col("count") / F.sqrt(F.col("n") * F.col("n_b")))
    )
    rank = F.row_number().over(
        Window.partitionBy("a").orderBy(F.col("score").desc(), F.col("b"))
    )
    return (
        scored.withColumn("rank", rank)
        .where(F.col("rank") <= top_k)
        .select(
            F.col("a").alias("item_id"),
            F.col("b").alias("neighbor_id"),
            F.col("count").alias("pair_count"),
            "score",
            "rank",
        )
    )


@dataclass
class GoldResult:
    rows: dict[str, int] = field(default_factory=dict)
    stages: list[dict[str, object]] = field(default_factory=list)


def build(spark: SparkSession, lake: Lake) -> GoldResult:
    """Rebuild every gold table from silver (each one Delta overwrite)."""
    result = GoldResult()
    interactions = read_delta(spark, lake.path("silver", "interactions"))
    if interactions is None:
        logger.info("no silver interactions yet; gold skipped")
        return result
    movies = read_delta(spark, lake.path("silver", "movies"))
    users = read_delta(spark, lake.path("silver", "users"))

    def write(table: str, frame: DataFrame) -> None:
        path = lake.path("gold", table)
        with stage(f"gold.{table}") as info:
            frame.write.format("delta").mode("overwrite").option(
                "overwriteSchema", "true"
            ).save(path)
            info["rows"] = last_output_rows(spark, path)
        result.stages.append(info)
        result.rows[table] = int(info["rows"])  # type: ignore[arg-type]

    write("user_sequences", user_sequences(interactions))
    sequences = spark.read.format("delta").load(lake.path("gold", "user_sequences"))
    write("item_features", item_features(movies, interactions))
    write("user_features", user_features(interactions, movies, users))
    write("item_cooccurrence", item_cooccurrence(sequences))
    return result
