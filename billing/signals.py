"""``entitlements_changed``: a user's plan or subscription state changed.

Sent after the commit (``sender=None``, ``user_id``, ``plan``, ``state``).
"""

from django.dispatch import Signal

entitlements_changed = Signal()
