from datetime import datetime, timedelta

from django import forms
from django.conf import settings
from django.contrib.auth.forms import UserCreationForm
from django.utils import timezone

from accounts.models import ApiKey, User


class SignUpForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("email", "display_name")


class ProfileForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ("display_name", "age_band", "gender", "occupation")
        help_texts = {
            "age_band": "Optional. Used only, in aggregate, to check that "
            "recommendations treat groups fairly.",
        }


class ApiKeyCreateForm(forms.Form):
    NEVER = "never"

    name = forms.CharField(
        label="Key name", max_length=80, help_text="For example: “production server”."
    )
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        choices=ApiKey.Scope.choices,
        initial=ApiKey.Scope.values,
        widget=forms.CheckboxSelectMultiple,
        help_text="What the key may call. Other calls answer 403.",
        error_messages={"required": "Choose at least one scope."},
    )
    expires_in = forms.ChoiceField(
        label="Expires",
        choices=[
            ("30", "in 30 days"),
            ("90", "in 90 days"),
            ("365", "in a year"),
            (NEVER, "never"),
        ],
        required=False,
        help_text="After this the key answers 401.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expires_in"].initial = str(
            settings.APEX_API_KEY_DEFAULT_EXPIRY_DAYS
        )
        if self.fields["expires_in"].initial not in dict(
            self.fields["expires_in"].choices
        ):
            self.fields["expires_in"].choices = [
                (self.fields["expires_in"].initial, "default"),
                *self.fields["expires_in"].choices,
            ]

    def expires_at(self) -> datetime | None:
        """The chosen expiry (a missing choice: the default number of days)."""
        choice = self.cleaned_data.get("expires_in") or str(
            settings.APEX_API_KEY_DEFAULT_EXPIRY_DAYS
        )
        if choice == self.NEVER:
            return None
        return timezone.now() + timedelta(days=int(choice))
