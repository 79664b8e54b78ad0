import pytest
from django.contrib.auth import get_user_model

from aioptions.models import ApiToken
from campaigns.models import Campaign


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("op", password="pw-123456", is_staff=True)


@pytest.fixture
def auth(staff) -> dict:
    """Headers of a staff API client (bearer token: no CSRF)."""
    _, raw = ApiToken.issue(staff)
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@pytest.fixture
def campaign(db):
    return Campaign.objects.create(name="Acme", extension="100", is_default=True)
