from django import template

register = template.Library()


@register.filter
def dollars(cents: int | None) -> str:
    """2900 → "29.00"; 0.5 cents → "0.005"."""
    if cents is None:
        return ""
    value = cents / 100
    return f"{value:,.2f}" if value >= 0.01 or value == 0 else f"{value:g}"


@register.filter
def thousands(number: int | None) -> str:
    return "" if number is None else f"{number:,}"
