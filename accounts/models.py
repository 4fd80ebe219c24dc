from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)  # None gives an unusable password
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.update(is_staff=True, is_superuser=True)
        return self._create_user(email, password, **extra)


class User(AbstractUser):
    """A person who signs in with an email address.

    The demographic fields are optional; fairness audits group by them and
    nothing else reads them.
    """

    class AgeBand(models.TextChoices):
        UNDER_18 = "under_18", "Under 18"
        AGE_18_24 = "18_24", "18–24"
        AGE_25_34 = "25_34", "25–34"
        AGE_35_44 = "35_44", "35–44"
        AGE_45_54 = "45_54", "45–54"
        AGE_55_PLUS = "55_plus", "55 and over"

    class Gender(models.TextChoices):
        FEMALE = "female", "Female"
        MALE = "male", "Male"
        OTHER = "other", "Another gender"

    username = None
    email = models.EmailField("email address", unique=True)
    display_name = models.CharField(max_length=80, blank=True)
    age_band = models.CharField(max_length=16, choices=AgeBand.choices, blank=True)
    gender = models.CharField(max_length=16, choices=Gender.choices, blank=True)
    occupation = models.CharField(max_length=64, blank=True)
    # Accounts imported from a data set (e.g. "movielens:ml-100k") keep their id
    # there, so re-running an import finds them instead of duplicating them.
    # Both are empty for people who signed up.
    source = models.CharField(max_length=40, blank=True, default="")
    external_id = models.CharField(max_length=64, blank=True, default="")

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    class Meta(AbstractUser.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"],
                condition=~models.Q(source=""),
                name="accounts_user_unique_external_id",
            )
        ]

    def __str__(self) -> str:
        return self.email


def all_api_key_scopes() -> list[str]:
    return list(ApiKey.Scope.values)


class ApiKey(models.Model):
    """A secret an API consumer sends as ``Authorization: Api-Key <key>``.

    Only a SHA-256 hash of the secret is stored; the key is shown once. Keys
    are high-entropy random strings, so a fast hash is safe here (the password
    hashers' slowness defends low-entropy passwords, not 256-bit secrets).

    A key may call only what its ``scopes`` cover, and nothing after
    ``expires_at`` (``accounts.authentication.ApiKeyAuthentication``).
    """

    class Scope(models.TextChoices):
        READ = "read", "Read (recommendations, catalog, search, account)"
        EVENTS = "events", "Events (send ratings and views)"
        BILLING = "billing", "Billing (plans, usage, checkout)"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=12, unique=True)
    hashed_secret = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    scopes = models.JSONField(default=all_api_key_scopes)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()
