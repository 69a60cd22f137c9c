import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    """Driver tests run on both anyio backends."""
    return request.param
