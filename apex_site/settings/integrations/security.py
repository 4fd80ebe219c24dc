"""Hardening: login lock-out, auth throttles, security headers, CSP, body sizes.

What each value defends, and where it is enforced, is in
``docs/ARCHITECTURE.md`` ("Hardening"). Production adds HTTPS-only cookies,
HSTS and the SSL redirect (``settings/production.py``).
"""

from __future__ import annotations

from datetime import timedelta

from csp import constants as csp

from ..environment import env_bool, env_int, env_list, env_str

__all__ = [
    "APEX_API_KEY_DEFAULT_EXPIRY_DAYS",
    "APEX_LOGIN_COOLOFF_MINUTES",
    "APEX_LOGIN_FAILURE_LIMIT",
    "APEX_THROTTLE_AUTH",
    "APEX_THROTTLE_SIGNUP",
    "APEX_TRUSTED_PROXY_COUNT",
    "AXES_CLIENT_IP_CALLABLE",
    "AXES_COOLOFF_TIME",
    "AXES_DISABLE_ACCESS_LOG",
    "AXES_FAILURE_LIMIT",
    "AXES_LOCKOUT_CALLABLE",
    "AXES_LOCKOUT_PARAMETERS",
    "AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT",
    "AXES_RESET_ON_SUCCESS",
    "AXES_USERNAME_CALLABLE",
    "CONTENT_SECURITY_POLICY",
    "CONTENT_SECURITY_POLICY_REPORT_ONLY",
    "DATA_UPLOAD_MAX_MEMORY_SIZE",
    "DATA_UPLOAD_MAX_NUMBER_FIELDS",
    "FILE_UPLOAD_MAX_MEMORY_SIZE",
    "PERMISSIONS_POLICY",
    "SECURE_CONTENT_TYPE_NOSNIFF",
    "SECURE_CROSS_ORIGIN_OPENER_POLICY",
    "SECURE_REFERRER_POLICY",
    "X_FRAME_OPTIONS",
]

# ------------------------------------------------------------------ login lock-out
# django-axes: after this many failed logins for one (email, client IP) pair,
# that pair is refused for the cool-off. Keyed on the pair, an attacker at
# another address cannot lock the owner out; the cool-off is never extended by
# failures during it, so no lock-out lasts longer than the cool-off.
APEX_LOGIN_FAILURE_LIMIT = env_int("APEX_LOGIN_FAILURE_LIMIT", 5, minimum=1)
APEX_LOGIN_COOLOFF_MINUTES = env_int("APEX_LOGIN_COOLOFF_MINUTES", 15, minimum=1)
AXES_FAILURE_LIMIT = APEX_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=APEX_LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # successes are last_login; failures are kept
AXES_USERNAME_CALLABLE = "accounts.lockout.login_username"
AXES_CLIENT_IP_CALLABLE = "accounts.lockout.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"

# Reverse proxies in front of the app that append to X-Forwarded-For (1 behind
# the bundled nginx; production's default). The client address the throttles
# and the lock-out key on is the one the outermost trusted proxy saw; 0 uses
# the socket's peer address (no proxy).
APEX_TRUSTED_PROXY_COUNT = env_int("APEX_TRUSTED_PROXY_COUNT", 0, minimum=0)

# Per client address, on the unauthenticated auth endpoints (login page,
# POST /v1/auth/token and /token/refresh) and on sign-up (page and API).
APEX_THROTTLE_AUTH = env_str("APEX_THROTTLE_AUTH", "20/min")
APEX_THROTTLE_SIGNUP = env_str("APEX_THROTTLE_SIGNUP", "10/hour")

# A key made on the account page expires after this many days unless the form
# asks otherwise (the service's default, for scripts, is no expiry).
APEX_API_KEY_DEFAULT_EXPIRY_DAYS = env_int(
    "APEX_API_KEY_DEFAULT_EXPIRY_DAYS", 90, minimum=1
)

# ------------------------------------------------------------------ headers
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Sent by accounts.middleware.PermissionsPolicyMiddleware: no page uses these.
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=()"
)

# ------------------------------------------------------------------ CSP
# django-csp. Scripts and <style> elements only from this origin or with the
# per-response nonce (templates: nonce="{{ request.csp_nonce }}"); style
# *attributes* (a bar's width) are allowed, they cannot run code. connect-src
# 'self' covers the live feed's same-origin websocket; form-action names
# Stripe because Checkout and the billing portal are reached by a redirect
# after a form post. The Swagger page's one fixed <style> is allowed by hash.
_swagger_ui_style = "'sha256-MMpT0iDxyjALd9PdfepImGX3DBfJPXZ4IlDWdPAgtn0='"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp.SELF],
        "script-src": [csp.SELF, csp.NONCE],
        "style-src": [csp.SELF, csp.NONCE, _swagger_ui_style],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": [csp.SELF, "data:", "https://image.tmdb.org"],
        "font-src": [csp.SELF],
        "connect-src": [csp.SELF, *env_list("APEX_CSP_CONNECT_SRC", [])],
        "object-src": [csp.NONE],
        "base-uri": [csp.NONE],
        "frame-ancestors": [csp.NONE],
        "form-action": [
            csp.SELF,
            "https://checkout.stripe.com",
            "https://billing.stripe.com",
        ],
        **(
            {"report-uri": env_str("APEX_CSP_REPORT_URI")}
            if env_str("APEX_CSP_REPORT_URI")
            else {}
        ),
    }
}
# true: send the policy as Content-Security-Policy-Report-Only (trying a change).
if env_bool("APEX_CSP_REPORT_ONLY", False):
    CONTENT_SECURITY_POLICY_REPORT_ONLY = CONTENT_SECURITY_POLICY
    CONTENT_SECURITY_POLICY = None
else:
    CONTENT_SECURITY_POLICY_REPORT_ONLY = None

# ------------------------------------------------------------------ body sizes
# The largest request the API takes is a batch of 500 events (~100 KB as
# JSON, ~160 KB with every optional field at its longest); 1 MiB leaves room
# and matches nginx's client_max_body_size. Larger bodies get 413
# (accounts.middleware.RequestSizeLimitMiddleware).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int(
    "APEX_MAX_REQUEST_BYTES", 1024 * 1024, minimum=1024
)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
