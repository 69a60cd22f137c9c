"""A client and a server YamuxSession over one pair of connected byte streams, the set-up most
driver tests of the session start from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from memstream import memory_stream_pair

from p2p.mux.yamux_session import YamuxConfig, YamuxSession


@asynccontextmanager
async def yamux_pair(client_conn: Any = None, server_conn: Any = None, *,
                     config: YamuxConfig = YamuxConfig()
                     ) -> AsyncIterator[tuple[YamuxSession, YamuxSession]]:
    """(client, server) sessions over `client_conn` and `server_conn`, both ends of one
    connection (an in-memory pair when neither is given: a test that wraps or watches one end
    makes the pair itself). Both sessions are closed on the way out, the server's first."""
    if (client_conn is None) != (server_conn is None):
        raise ValueError("give both ends of the connection or neither")
    if client_conn is None:
        client_conn, server_conn = memory_stream_pair()
    async with YamuxSession(client_conn, is_client=True, config=config) as client, \
            YamuxSession(server_conn, is_client=False, config=config) as server:
        yield client, server
