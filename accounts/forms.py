from django import forms
from django.contrib.auth.forms import UserCreationForm

from accounts.models import User


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
    name = forms.CharField(
        label="Key name", max_length=80, help_text="For example: “production server”."
    )
