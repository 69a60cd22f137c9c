import os

import pytest
from hypothesis import HealthCheck, settings

# Property tests judge correctness, never speed: no per-example deadline (a shared 2-core machine
# makes timings meaningless). In CI the examples are derandomized so a run is reproducible; locally
# each run explores new examples (and the .hypothesis database replays any failure it found).
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", parent=settings.get_profile("dev"), derandomize=True,
                          print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    """Driver tests run on both anyio backends."""
    return request.param
