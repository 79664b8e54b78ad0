from tests.bridge.conftest import close_thread_connections  # noqa: F401 - shared fixture
