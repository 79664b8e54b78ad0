from tests.pipeline.conftest import call_row, campaign  # noqa: F401 - shared fixtures
