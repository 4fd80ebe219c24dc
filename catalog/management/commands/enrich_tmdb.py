from django.conf import settings
from django.core.management.base import BaseCommand

from apex_site.errors import ApplicationError
from catalog.loaders.tmdb_api import default_client, tmdb_enrich
from catalog.management.commands._common import (
    command_error,
    show_progress_logs,
    write_report,
)


class Command(BaseCommand):
    help = (
        "Fill posters, overviews, cast, director, keywords, collections and "
        "trailers from the TMDB API (needs TMDB_API_KEY). Cached; rate-limited."
    )

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, help="at most this many movies")

    def handle(self, *args, **options):
        if not settings.TMDB_API_KEY:
            self.stdout.write(
                "TMDB_API_KEY is not set: nothing to do. Movies keep their CSV "
                "data and generated poster placeholders."
            )
            return
        show_progress_logs(options["verbosity"])
        try:
            report = tmdb_enrich(client=default_client(), limit=options["limit"])
        except ApplicationError as exc:
            raise command_error(exc) from exc
        write_report(self, report)
