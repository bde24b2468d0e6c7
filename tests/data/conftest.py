import pytest
from capped import capped_worker_fixture


@pytest.fixture(scope="session")
def capped():
    """A worker process that runs readers under a 200 MB memory cap (see capped.py)."""
    yield from capped_worker_fixture()
