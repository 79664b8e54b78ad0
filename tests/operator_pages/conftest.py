import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from campaigns.models import Campaign


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("op", password="pw-123456", is_staff=True)


@pytest.fixture
def csrf_client(staff):
    """A logged-in staff browser whose writes are CSRF-checked, as in production."""
    c = Client(enforce_csrf_checks=True)
    c.force_login(staff)
    return c


@pytest.fixture
def campaign(db):
    return Campaign.objects.create(name="Acme", extension="100", is_default=True, greeting="Hello from Acme.")
