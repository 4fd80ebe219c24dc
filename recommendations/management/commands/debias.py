"""``manage.py debias``: fit the ensemble's weights and store a proposed version.

Trains the member models on the data set, chooses blend weights on the
validation events by the doubly-robust estimate (``--objective``), and writes
an ``EnsembleWeights`` version with status ``proposed`` (activate it in the
admin). ``python -m recommendations.engine debias`` is the same without the
database.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from recommendations import services
from recommendations.engine.errors import EngineError


class Command(BaseCommand):
    help = "Fit ensemble weights by doubly-robust estimation; store a proposed version."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--data", default="ml-100k", help="ml-100k | folder | CSV")
        parser.add_argument("--members", default="", help="comma-separated members")
        parser.add_argument("--profile", choices=("quick", "full"), default="quick")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
        parser.add_argument(
            "--objective", choices=("dr", "ips", "snips", "ndcg"), default="dr"
        )
        parser.add_argument("--save-model", default=None, metavar="DIR")
        parser.add_argument("--notes", default="")

    def handle(self, *args, **options) -> None:
        from recommendations.engine.ensemble.fitting import fit_ensemble_weights

        members = [m for m in options["members"].split(",") if m.strip()]
        try:
            fit = fit_ensemble_weights(
                options["data"],
                members=members or None,
                profile=options["profile"],
                seed=options["seed"],
                device=options["device"],
                objective=options["objective"],
                save_model=options["save_model"],
            )
        except EngineError as exc:
            raise CommandError(str(exc)) from exc
        version = services.ensemble_weights_propose(fit=fit, notes=options["notes"])
        self.stdout.write(
            self.style.SUCCESS(
                f"proposed ensemble weights v{version.version}: "
                f"{json.dumps(version.weights)} ({version.objective} = "
                f"{version.estimated_value:.4f})"
            )
        )
