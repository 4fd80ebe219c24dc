"""``manage.py debias``: fit the ensemble's weights and store a proposed version.

Trains the member models on the data set, chooses blend weights on the
validation events (``--objective``: validation NDCG@10 by default, or the
DR / IPS / SNIPS estimate; every estimate is stored with the version), and
writes an ``EnsembleWeights`` version with status ``proposed`` (activate it
in the admin). ``python -m recommendations.engine debias`` is the same
without the database.

``--from-impressions`` chooses the weights from the system's own impression
log instead (slate DR over the logged propensities and clicks); when the log
is too thin it says so and falls back to the popularity proxy above.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from recommendations import services
from recommendations.engine.errors import EngineError


class Command(BaseCommand):
    help = "Fit ensemble weights on validation events; store a proposed version."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--data", default="ml-100k", help="ml-100k | folder | CSV")
        parser.add_argument("--members", default="", help="comma-separated members")
        parser.add_argument("--profile", choices=("quick", "full"), default="quick")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
        parser.add_argument(
            "--objective", choices=("dr", "ips", "snips", "ndcg"), default="ndcg"
        )
        parser.add_argument("--save-model", default=None, metavar="DIR")
        parser.add_argument("--notes", default="")
        parser.add_argument(
            "--from-impressions",
            action="store_true",
            help="choose weights by DR on the impression log (fallback: the proxy)",
        )
        parser.add_argument(
            "--min-slates",
            type=int,
            default=None,
            help="logged slates needed (default APEX_IMPRESSIONS_MIN_SLATES)",
        )

    def handle(self, *args, **options) -> None:
        from recommendations.engine.ensemble.fitting import fit_ensemble_weights

        if options["from_impressions"]:
            fit, slates = services.ensemble_weights_fit_from_impressions(
                min_slates=options["min_slates"], seed=options["seed"]
            )
            if fit is not None:
                self._propose(fit, options["notes"] or "from the impression log")
                return
            self.stdout.write(
                self.style.WARNING(
                    f"the impression log is too thin ({slates} usable slates): "
                    "falling back to the popularity proxy"
                )
            )
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
        self._propose(fit, options["notes"])

    def _propose(self, fit: dict, notes: str) -> None:
        version = services.ensemble_weights_propose(fit=fit, notes=notes)
        self.stdout.write(
            self.style.SUCCESS(
                f"proposed ensemble weights v{version.version}: "
                f"{json.dumps(version.weights)} ({version.objective} = "
                f"{version.estimated_value:.4f})"
            )
        )
