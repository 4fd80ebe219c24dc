"""Bulk loaders that fill the catalog, the accounts and the interaction log.

The file parsing lives elsewhere (MovieLens: ``recommendations.engine.data.
movielens``, the one parser of those files); these modules turn parsed tables
into rows, in batches, idempotently, and say what they did.
"""
