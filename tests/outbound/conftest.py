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


@pytest.fixture
async def close_thread_connections():
    """Async tests reach the ORM through sync_to_async's worker thread: close its connection after
    the test so PostgreSQL can drop the test database."""
    from asgiref.sync import sync_to_async
    from django.db import connections

    yield
    await sync_to_async(connections.close_all)()
