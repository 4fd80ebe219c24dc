from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.views import (
    TokenBlacklistView,
    TokenObtainPairView,
    TokenRefreshView,
)

from accounts.errors import AccountsErrorCode
from accounts.lockout import (
    AuthRateThrottle,
    SignupRateThrottle,
    cool_off_seconds,
    lockout_message,
)
from accounts.models import User
from accounts.services import user_profile_update, user_register


class UserOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ("id", "email", "display_name", "age_band", "gender", "occupation")


class LoginLockedOut(exceptions.Throttled):
    """429 ``login_locked_out``: too many failed logins for this email from
    this address; ``Retry-After`` is the cool-off."""

    default_code = AccountsErrorCode.LOGIN_LOCKED_OUT


class TokenObtainApi(TokenObtainPairView):
    """simplejwt's token view, throttled per address, with the lock-out's 429
    (axes flags the DRF request it was given: ``accounts.lockout``)."""

    def get_throttles(self):
        return [*super().get_throttles(), AuthRateThrottle()]

    def post(self, request, *args, **kwargs):
        try:
            return super().post(request, *args, **kwargs)
        except exceptions.AuthenticationFailed:
            if getattr(request, "axes_locked_out", False):
                raise LoginLockedOut(
                    wait=cool_off_seconds(),
                    detail=lockout_message(),
                    code=AccountsErrorCode.LOGIN_LOCKED_OUT,
                ) from None
            raise


class TokenRefreshApi(TokenRefreshView):
    """Rotates: the answer carries a new refresh token and the one sent is
    blacklisted (``ROTATE_REFRESH_TOKENS``, ``BLACKLIST_AFTER_ROTATION``)."""

    def get_throttles(self):
        return [*super().get_throttles(), AuthRateThrottle()]


class LogoutApi(TokenBlacklistView):
    """Blacklists the refresh token sent: it can no longer be refreshed.
    Access tokens already issued stay valid until they expire
    (``APEX_JWT_ACCESS_MINUTES``)."""

    def get_throttles(self):
        return [*super().get_throttles(), AuthRateThrottle()]


class RegisterApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    def get_throttles(self):
        return [*super().get_throttles(), SignupRateThrottle()]

    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        password = serializers.CharField(
            write_only=True, style={"input_type": "password"}
        )
        display_name = serializers.CharField(max_length=80, required=False, default="")
        age_band = serializers.ChoiceField(User.AgeBand.choices, required=False)
        gender = serializers.ChoiceField(User.Gender.choices, required=False)
        occupation = serializers.CharField(max_length=64, required=False)

    @extend_schema(
        summary="Create an account",
        tags=["auth"],
        request=InputSerializer,
        responses={201: UserOutputSerializer},
        examples=[
            OpenApiExample(
                "New subscriber",
                value={"email": "ada@example.com", "password": "a long passphrase"},
                request_only=True,
            )
        ],
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_register(**serializer.validated_data)
        return Response(UserOutputSerializer(user).data, status=status.HTTP_201_CREATED)


class MeApi(APIView):
    permission_classes = [IsAuthenticated]

    class ProfileInputSerializer(serializers.Serializer):
        display_name = serializers.CharField(
            max_length=80, required=False, allow_blank=True
        )
        age_band = serializers.ChoiceField(
            User.AgeBand.choices, required=False, allow_blank=True
        )
        gender = serializers.ChoiceField(
            User.Gender.choices, required=False, allow_blank=True
        )
        occupation = serializers.CharField(
            max_length=64, required=False, allow_blank=True
        )

    @extend_schema(
        summary="The authenticated account",
        tags=["auth"],
        responses=UserOutputSerializer,
    )
    def get(self, request):
        return Response(UserOutputSerializer(request.user).data)

    @extend_schema(
        summary="Edit the optional profile fields",
        tags=["auth"],
        request=ProfileInputSerializer,
        responses=UserOutputSerializer,
    )
    def patch(self, request):
        serializer = self.ProfileInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_profile_update(user=request.user, **serializer.validated_data)
        return Response(UserOutputSerializer(user).data)
