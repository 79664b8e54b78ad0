import pytest
from asgiref.sync import sync_to_async
from django.db import connections


@pytest.fixture
async def close_thread_connections():
    """The bridge reads the ORM through sync_to_async's worker thread; close that thread's
    connection after the test so PostgreSQL can drop the test database."""
    yield
    await sync_to_async(connections.close_all)()
