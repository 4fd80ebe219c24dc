from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from accounts.services import user_profile_update, user_register


class UserOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ("id", "email", "display_name", "age_band", "gender", "occupation")


class RegisterApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

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
