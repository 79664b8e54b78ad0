import pytest
from django.contrib.auth import get_user_model

from aioptions.models import ApiToken
from campaigns.models import Campaign


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("op", password="pw-123456", is_staff=True)


@pytest.fixture
def plain_user(db):
    return get_user_model().objects.create_user("joe", password="pw-123456", is_staff=False)


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def token(staff):
    _, raw = ApiToken.issue(staff)
    return raw


@pytest.fixture
def campaign(db):
    return Campaign.objects.create(name="Acme", extension="100", is_default=True)
