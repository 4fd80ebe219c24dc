"""Create or update the Stripe meter, products and prices of the paid plans
(idempotent), mirror them into dj-stripe, and optionally register the
webhook endpoint."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apex_site.errors import ApplicationError
from billing import services


class Command(BaseCommand):
    help = "Sync the plans (billing/plans.py) to Stripe products and prices."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--webhook-base-url",
            help="Also register <url>/stripe/webhook/<uuid>/ at Stripe for the "
            "events billing handles (once; keep the printed secret's row)",
        )

    def handle(self, *args, webhook_base_url: str | None = None, **options) -> None:
        try:
            prices = services.plans_sync()
            for price in prices:
                self.stdout.write(
                    f"{price.lookup_key}: {price.stripe_price_id} ({price.plan})"
                )
            if webhook_base_url:
                endpoint = services.webhook_endpoint_create(base_url=webhook_base_url)
                self.stdout.write(f"webhook endpoint {endpoint.id}: {endpoint.url}")
        except ApplicationError as error:
            raise CommandError(error.message) from error
