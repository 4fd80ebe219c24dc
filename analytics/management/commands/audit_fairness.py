from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from analytics.audits import audit_served, evaluate_artifact
from apex_site.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Audit the current artifact on held-out users: full-ranking NDCG/HR/MRR@10 "
        "of each member and the ensemble, and the ensemble's fairness measures "
        "(exposure Gini, coverage, long tail, calibration KL, exposure by "
        "popularity, NDCG/HR@10 per demographic group). Stores an audit row and "
        "an offline evaluation; thresholds in settings raise alerts. With "
        "--served: the same fairness measures over the personalised slates "
        "actually served (the impression log), with click-through per group."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dataset",
            help="the data the artifact was trained on (as `train --dataset`; "
            "default: the interaction log when it has events)",
        )
        parser.add_argument(
            "--max-users", type=int, help="default: APEX_AUDIT_MAX_USERS"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--no-members", action="store_true", help="evaluate the ensemble only"
        )
        parser.add_argument(
            "--served",
            action="store_true",
            help="audit the served slates of the last --hours instead",
        )
        parser.add_argument(
            "--hours", type=float, default=24.0, help="with --served (default 24)"
        )

    def handle(self, *args, **options):
        if options["served"]:
            return self._served(options)
        try:
            audit, evaluation = evaluate_artifact(
                dataset=options["dataset"],
                max_users=options["max_users"],
                seed=options["seed"],
                members=not options["no_members"],
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        m = audit.metrics
        self.stdout.write(
            f"audit {audit.pk} of {audit.artifact_version} on {audit.users} users "
            f"({audit.dataset}) in {audit.seconds:.1f} s"
        )
        for name, row in evaluation.results.items():
            self.stdout.write(
                f"  {name:>12}: ndcg@10 {row['ndcg@10']['mean']:.4f} "
                f"hr@10 {row['hr@10']['mean']:.4f} coverage {row['coverage']:.3f}"
            )
        self.stdout.write(
            f"  gini {m['exposure_gini']:.3f}, coverage {m['coverage']:.3f}, "
            f"long tail {m['long_tail_share']:.3f}, calibration KL "
            f"{m['calibration_kl']['mean']}"
        )
        for alert in audit.alerts:
            self.stdout.write(self.style.WARNING(f"  ALERT {alert['message']}"))

    def _served(self, options):
        if options["hours"] <= 0:
            raise CommandError("--hours must be positive")
        now = timezone.now()
        try:
            audit = audit_served(
                since=now - timedelta(hours=options["hours"]),
                until=now,
                max_slates=options["max_users"],
                seed=options["seed"],
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        m, period = audit.metrics, audit.metrics["period"]
        self.stdout.write(
            f"served audit {audit.pk}: {period['slates_audited']} of "
            f"{period['slates_served']} slates, {audit.users} users, "
            f"last {options['hours']:g} h, in {audit.seconds:.1f} s"
        )
        self.stdout.write(
            f"  gini {m['exposure_gini']:.3f}, coverage {m['coverage']:.3f}, "
            f"long tail {m['long_tail_share']:.3f}, calibration KL "
            f"{m['calibration_kl']['mean']}, ctr {m['accuracy']['ctr']['mean']}"
        )
        for alert in audit.alerts:
            self.stdout.write(self.style.WARNING(f"  ALERT {alert['message']}"))
