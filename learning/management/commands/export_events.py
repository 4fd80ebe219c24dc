from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from learning.exports import events_export


def _since(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--since {value!r} is not an ISO date/time") from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.utc)
    return moment


class Command(BaseCommand):
    help = (
        "Export interaction-log rows added since the last export to "
        "<APEX_LAKE_DIR>/landing/events/events-<UTC timestamp>.parquet for the "
        "ETL. Incremental: the watermark is stored, so a rerun exports nothing new."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--since",
            type=_since,
            help="only rows recorded at or after this ISO time (UTC if no zone)",
        )
        parser.add_argument("--lake-dir", help="default: APEX_LAKE_DIR")
        parser.add_argument(
            "--settle-seconds",
            type=float,
            default=5.0,
            help="skip rows younger than this, so late commits are not missed",
        )

    def handle(self, *args, **options):
        result = events_export(
            since=options["since"],
            lake_dir=options["lake_dir"],
            settle_seconds=options["settle_seconds"],
        )
        if result.path is None:
            self.stdout.write("no new events to export")
            return
        self.stdout.write(
            f"exported {result.rows} events (ids {result.first_event_id}.."
            f"{result.last_event_id}) to {result.path}"
        )
