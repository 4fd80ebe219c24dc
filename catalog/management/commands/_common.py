"""Shared bits of the catalog commands."""

from __future__ import annotations

import logging

from django.core.management.base import CommandError

from apex_site.errors import ApplicationError
from catalog.loaders.report import LoadReport


def write_report(command, report: LoadReport) -> None:
    for line in report.lines():
        command.stdout.write(line)


def command_error(exc: ApplicationError) -> CommandError:
    return CommandError(exc.message)


def show_progress_logs(verbosity: int) -> None:
    """Loaders log progress at INFO; make sure an operator sees it."""
    if verbosity >= 1:
        logging.getLogger("catalog").setLevel(logging.INFO)
