"""Pages: pricing, the account's billing page, and the two buttons that send
a person to Stripe (Checkout, the Customer Portal)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apex_site.errors import ApplicationError
from billing import selectors, services


def pricing(request):
    current = (
        selectors.user_entitlements(user=request.user).plan
        if request.user.is_authenticated
        else None
    )
    return render(
        request,
        "billing/pricing.html",
        {
            "plans": selectors.plan_list(),
            "current_plan": current,
            "configured": selectors.billing_configured(),
            "canceled": request.GET.get("checkout") == "canceled",
        },
    )


def _account_context(request) -> dict:
    return {
        "entitlements": selectors.user_entitlements(user=request.user),
        "usage": selectors.user_usage(user=request.user),
        "invoices": selectors.invoice_list(user=request.user)[:12],
        "configured": selectors.billing_configured(),
    }


@login_required
def account(request):
    context = _account_context(request)
    context["checkout_returned"] = request.GET.get("checkout") == "success"
    return render(request, "billing/account.html", context)


@login_required
def account_status(request):
    """The plan panel alone: the page polls it (htmx), so an open tab shows a
    change as soon as the webhook has applied it."""
    return render(request, "billing/_plan_status.html", _account_context(request))


@require_POST
@login_required
def checkout(request, plan: str):
    try:
        url = services.checkout_session_create(
            user=request.user,
            plan_key=plan,
            success_url=request.build_absolute_uri(reverse("billing:account"))
            + "?checkout=success",
            cancel_url=request.build_absolute_uri(reverse("billing:pricing"))
            + "?checkout=canceled",
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("billing:pricing")
    return redirect(url)


@require_POST
@login_required
def portal(request):
    try:
        url = services.portal_session_create(
            user=request.user,
            return_url=request.build_absolute_uri(reverse("billing:account")),
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("billing:account")
    return redirect(url)
