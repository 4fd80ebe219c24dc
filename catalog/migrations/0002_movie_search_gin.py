"""GIN index over Movie.search_vector, on PostgreSQL only.

Declaring it in Movie.Meta would make SQLite (the embedded mode) fail on
``USING gin``; keyword search on SQLite does not use the column at all.
"""

from django.db import migrations

INDEX = "catalog_movie_search_gin"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON catalog_movie "
            "USING gin (search_vector)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]

    operations = [migrations.RunPython(create, drop)]
