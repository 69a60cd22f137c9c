"""Requester run inside the netns test's namespace A: `python netns_requester.py ADDR...`.

Connects to the workers, submits one `bulk` request and prints JSON lines: one per attempt as it
starts ({"attempt": peer}), then {"response": ..., "attempts": [...], "elapsed": s}.
"""

from __future__ import annotations

import json
import sys
import time

import anyio

from oracle.demo import RecordingDirectory
from oracle.manager import WorkerConfig
from oracle.node import NodeConfig, OracleNode

RESPONSE_TIMEOUT = 3.0


def emit(obj: object) -> None:
    print(json.dumps(obj), flush=True)


async def main(addrs: list[str]) -> None:
    config = NodeConfig(listen=(), worker=WorkerConfig(
        connection_timeout=2.0, worker_response_timeout=RESPONSE_TIMEOUT, worker_timeout=4.0,
        max_remote_workers=2))
    async with OracleNode(None, config) as node:
        await node.connect_all(addrs)
        emit({"workers": sorted(str(p) for p in node.workers())})
        recorder = RecordingDirectory(node.manager.directory)
        node.manager.directory = recorder

        async def announce() -> None:
            seen = 0
            while True:  # look before waiting: the first attempt may start before we run
                event = recorder.attempt_started
                for a in recorder.attempts[seen:]:
                    emit({"attempt": a.peer})
                seen = len(recorder.attempts)
                await event.wait()

        async with anyio.create_task_group() as tg:
            tg.start_soon(announce)
            started = time.monotonic()
            response = await node.submit("bulk", "job-1", request_id="job-1")
            tg.cancel_scope.cancel()
        emit({"error": response.error, "worker": response.worker_peer_id,
              "data_len": len(response.data or ""), "elapsed": time.monotonic() - started,
              "attempts": [{"peer": a.peer, "error": a.error, "seconds": a.seconds}
                           for a in recorder.attempts]})


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
