from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST

from accounts import selectors, services
from accounts.forms import ApiKeyCreateForm, ProfileForm, SignUpForm
from accounts.lockout import AuthRateThrottle, SignupRateThrottle, page_throttled
from apex_site.errors import ApplicationError


def signup(request):
    if request.user.is_authenticated:
        return redirect("home")
    if throttled := page_throttled(request, SignupRateThrottle):
        return throttled
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, "Welcome to APEX! Rate a few movies to get started.")
        return redirect("home")
    return render(request, "accounts/signup.html", {"form": form})


class LoginView(auth_views.LoginView):
    """Django's login; failed attempts count towards the lock-out
    (``accounts.lockout``), and each address's attempts are throttled."""

    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        if throttled := page_throttled(request, AuthRateThrottle):
            return throttled
        return super().post(request, *args, **kwargs)


class LogoutView(auth_views.LogoutView):
    pass


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:account")

    def form_valid(self, form):
        messages.success(self.request, "Your password was changed.")
        return super().form_valid(form)


@login_required
def account(request):
    profile_form = ProfileForm(
        request.POST if "save_profile" in request.POST else None, instance=request.user
    )
    if request.method == "POST" and "save_profile" in request.POST:
        if profile_form.is_valid():
            profile_form.save()
            messages.success(request, "Profile saved.")
            return redirect("accounts:account")
    new_key = request.session.pop("new_api_key", None)
    return render(
        request,
        "accounts/account.html",
        {
            "profile_form": profile_form,
            "key_form": ApiKeyCreateForm(),
            "api_keys": selectors.api_key_list(user=request.user),
            "new_api_key": new_key,
        },
    )


@login_required
@require_POST
def api_key_create(request):
    form = ApiKeyCreateForm(request.POST)
    if not form.is_valid():
        if "name" in form.errors:
            messages.error(request, "Give the key a name (up to 80 characters).")
        for field in ("scopes", "expires_in"):
            for error in form.errors.get(field, []):
                messages.error(request, error)
        return redirect("accounts:account")
    _key, raw = services.api_key_create(
        user=request.user,
        name=form.cleaned_data["name"],
        scopes=form.cleaned_data["scopes"],
        expires_at=form.expires_at(),
    )
    # Shown once on the next page, then gone: only its hash is stored.
    request.session["new_api_key"] = raw
    return redirect("accounts:account")


@login_required
@require_POST
def api_key_revoke(request, key_id: int):
    try:
        key = services.api_key_revoke(user=request.user, key_id=key_id)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Revoked “{key.name}”.")
    return redirect("accounts:account")
