import factory
from django.utils import timezone

from accounts.tests.factories import UserFactory
from catalog.tests.factories import MovieFactory
from learning.models import Interaction


class InteractionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Interaction

    user = factory.SubFactory(UserFactory)
    movie = factory.SubFactory(MovieFactory)
    kind = Interaction.Kind.RATING
    value = 4.0
    occurred_at = factory.LazyFunction(timezone.now)
    source = "web"
    idempotency_key = factory.Sequence(lambda n: f"test:{n}")
