"""``manage.py train``: train the ensemble and publish a serving artifact version.

A thin command over ``recommendations.services.model_train`` (its docstring
and ``recommendations/training_data.py`` say what is trained on and what is
published). ``--no-activate`` leaves both the active weights and the
``current`` pointer unchanged (the version is still published, for review).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apex_site.errors import ApplicationError
from recommendations import services


class Command(BaseCommand):
    help = "Train the ensemble and publish a serving artifact version."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dataset",
            default=None,
            help="db | ml-100k | folder | CSV (default: db when the log has events, "
            "else ml-100k)",
        )
        parser.add_argument("--gold", default=None, metavar="DIR", help="gold lake")
        parser.add_argument("--profile", choices=("quick", "full"), default="quick")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--members", nargs="+", default=None, help="ensemble members (names)"
        )
        parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
        parser.add_argument(
            "--time-budget", type=float, default=None, help="members' total seconds"
        )
        parser.add_argument(
            "--id-field",
            choices=("auto", "ml100k_id", "movielens_id", "pk"),
            default="auto",
            help="how external item ids map to Movie pks (non-db data)",
        )
        parser.add_argument(
            "--artifact-version", default=None, help="artifact version name"
        )
        parser.add_argument("--no-activate", action="store_true")
        parser.add_argument(
            "--if-missing",
            action="store_true",
            help="do nothing when a current artifact version exists (make run)",
        )

    def handle(self, *args, **options) -> None:
        try:
            result = services.model_train(
                dataset=options["dataset"],
                gold=options["gold"],
                profile=options["profile"],
                seed=options["seed"],
                members=tuple(options["members"]) if options["members"] else None,
                device=options["device"],
                time_budget_s=options["time_budget"],
                id_field=options["id_field"],
                artifact_version=options["artifact_version"],
                activate=not options["no_activate"],
                if_missing=options["if_missing"],
                progress=self.stdout.write,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if result.skipped:
            return
        metrics = result.metrics or {}
        self.stdout.write(
            self.style.SUCCESS(
                f"artifact version {result.artifact_version} "
                f"({'current' if result.activated else 'not activated'}); "
                f"ensemble weights v{result.weights_version} "
                f"({result.weights_status}); ndcg@10 {metrics.get('ndcg@10')}"
            )
        )
        for tier, (files, size) in (result.tier_sizes or {}).items():
            self.stdout.write(f"  tier {tier}: {files} files, {size / 1e6:.1f} MB")
        self.stdout.write(f"elapsed {result.seconds:.1f} s")
