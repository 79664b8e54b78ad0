import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from aioptions.models import ApiToken
from campaigns.models import Campaign


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("op", password="pw-123456", is_staff=True)


@pytest.fixture
def token(staff):
    _, raw = ApiToken.issue(staff)
    return raw


@pytest.fixture
def session(staff):
    """A logged-in browser session that enforces CSRF like a real browser request would."""
    c = Client(enforce_csrf_checks=True)
    c.force_login(staff)
    return c


@pytest.fixture
def campaign(db):
    return Campaign.objects.create(name="Acme", extension="100", is_default=True)


@pytest.fixture
def root(db):
    """A logged-in superuser client (the admin's forms)."""
    user = get_user_model().objects.create_superuser("root", password="pw-123456")
    c = Client()
    c.force_login(user)
    return c
