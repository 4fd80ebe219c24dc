from django.core.management.base import BaseCommand

from apex_site.errors import ApplicationError
from catalog.loaders.tmdb import tmdb_load
from catalog.management.commands._common import (
    command_error,
    show_progress_logs,
    write_report,
)


class Command(BaseCommand):
    help = (
        "Import TMDB metadata from a Kaggle 'TMDB 5000'-style movies CSV and/or a "
        "cast/director CSV, matching movies by TMDB id or title + year. Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--movies", help="tmdb_5000_movies.csv-shaped file")
        parser.add_argument("--credits", help="cast/director CSV (id, cast, director)")
        parser.add_argument("--skip-malformed", action="store_true")
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args, **options):
        show_progress_logs(options["verbosity"])
        try:
            report = tmdb_load(
                movies_csv=options["movies"],
                credits_csv=options["credits"],
                skip_malformed=options["skip_malformed"],
                batch_size=options["batch_size"],
            )
        except ApplicationError as exc:
            raise command_error(exc) from exc
        write_report(self, report)
