import uuid

from django import forms

from catalog import selectors

STAR_CHOICES = [(f"{x / 2:g}", f"{x / 2:g} ★") for x in range(10, 0, -1)]


class BrowseForm(forms.Form):
    genre = forms.ChoiceField(required=False, label="Genre")
    decade = forms.ChoiceField(required=False, label="Decade")
    ordering = forms.ChoiceField(
        required=False,
        label="Sort by",
        choices=[
            ("popularity", "Most rated"),
            ("rating", "Highest rated"),
            ("-year", "Newest"),
            ("year", "Oldest"),
            ("title", "Title"),
        ],
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["genre"].choices = [("", "All genres")] + [
            (g.slug, g.name) for g in selectors.genre_list()
        ]
        self.fields["decade"].choices = [("", "Any decade")] + [
            (str(d), f"{d}s") for d in selectors.decade_list()
        ]


def _new_key() -> str:
    return uuid.uuid4().hex


class RateForm(forms.Form):
    stars = forms.TypedChoiceField(
        choices=STAR_CHOICES, coerce=float, label="Your rating"
    )
    # One key per rendered form: a double-submitted form records one rating.
    idempotency_key = forms.CharField(widget=forms.HiddenInput, initial=_new_key)


class WatchlistForm(forms.Form):
    on = forms.BooleanField(required=False, widget=forms.HiddenInput)
    idempotency_key = forms.CharField(widget=forms.HiddenInput, initial=_new_key)


class SearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search movies")
    mode = forms.ChoiceField(
        choices=[("keyword", "Keyword"), ("semantic", "Semantic")],
        required=False,
        initial="keyword",
        widget=forms.RadioSelect,
    )
