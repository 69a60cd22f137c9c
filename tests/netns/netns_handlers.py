"""Work handler for the netns test's workers (loaded with --handler bulk=netns_handlers:bulk)."""

import anyio

RESPONSE_SIZE = 1 << 20


async def bulk(data: bytes) -> str:
    """Work for half a second, then answer 1 MiB: the link is cut while this runs."""
    await anyio.sleep(0.5)
    return bytes(data).decode() + "x" * RESPONSE_SIZE
