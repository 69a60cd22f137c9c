"""WorkHandlerManager: the registry of work handlers, their metrics, local execution and distribution.

Mirrors masa-oracle pkg/workers/worker_manager.go:
- `execute_work` finds the handler for the work type (`work handler not found` otherwise) and runs it
  under a timeout (`work execution timed out`). Sync handlers run in a worker thread (a bounded pool;
  on timeout the thread is abandoned, as Go abandons its goroutine), async handlers are awaited and
  cancelled. Per handler we count calls, total runtime, errors and timeouts.
- `distribute_work` asks a `WorkerDirectory` for eligible peers, tries the remote ones first in
  shuffled order (at most `max_remote_workers` attempts), then runs locally if a local handler exists.
  Errors are aggregated in Go's words. Our addition: a worker that failed within `failure_backoff`
  seconds goes to the back of the line, so one dead peer does not cost every request an attempt.

A handler takes the request's data bytes and returns a WorkResponse, or any JSON-encodable value
(taken as `data`); an exception becomes the response's `error`.
"""

from __future__ import annotations

import dis
import inspect
import logging
import math
import random
import time
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable, Hashable, Iterable, Protocol, Union

import anyio
import anyio.to_thread

from oracle.messages import WorkRequest, WorkResponse
from p2p.logtext import bounded
from p2p.sync import current_time

__all__ = [
    "ERR_ALL_FAILED",
    "ERR_HANDLER_NOT_FOUND",
    "ERR_NO_WORKERS",
    "ERR_TIMED_OUT",
    "HandlerMetrics",
    "WorkHandler",
    "WorkHandlerManager",
    "WorkerConfig",
    "WorkerDirectory",
]

log = logging.getLogger(__name__)

ERR_HANDLER_NOT_FOUND = "work handler not found"
ERR_TIMED_OUT = "work execution timed out"
#: execute_work's answer when its caller cancelled the work (never sent: the requester is gone)
ERR_CANCELLED = "work cancelled"
ERR_NO_WORKERS = "no eligible workers found"
ERR_ALL_FAILED = "All workers failed. Errors: "

WorkHandler = Callable[[bytes], Union[Any, Awaitable[Any]]]


@dataclass(frozen=True)
class WorkerConfig:
    """Timeouts and limits; defaults are Go's (pkg/workers/config.go) unless marked ours."""

    worker_timeout: float = 55.0  # whole remote attempt (connect + send + response)
    worker_response_timeout: float = 45.0  # handler run time / waiting for a remote response
    connection_timeout: float = 0.075
    find_peer_timeout: float = 0.05
    max_retries: int = 1  # kept for parity with Go's config; each worker gets one attempt
    max_remote_workers: int = 10
    failure_backoff: float = 60.0  # ours: how long a failed worker goes to the back of the line
    max_handler_threads: int = 8  # ours: bound on threads running sync handlers

    def __post_init__(self) -> None:
        for name in ("worker_timeout", "worker_response_timeout", "connection_timeout", "find_peer_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        if not (isinstance(self.failure_backoff, (int, float)) and self.failure_backoff >= 0):
            raise ValueError("failure_backoff must be >= 0")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.max_remote_workers < 0:
            raise ValueError("max_remote_workers must be >= 0")
        if self.max_handler_threads < 1:
            raise ValueError("max_handler_threads must be >= 1")


class WorkerDirectory(Protocol):
    """What distribution needs from the node: who we are, who may work, how to reach them."""

    @property
    def local_peer_id(self) -> Hashable: ...

    def eligible_peers(self, work_type: str) -> Iterable[Hashable]: ...

    async def send_work(
        self, peer: Any, request: WorkRequest, *, connect_timeout: float, response_timeout: float
    ) -> WorkResponse: ...


@dataclass
class HandlerMetrics:
    """Counters for one work type (Go keeps CallCount and TotalRuntime; we add errors/timeouts)."""

    calls: int = 0
    total_runtime: float = 0.0
    errors: int = 0
    timeouts: int = 0

    @property
    def mean_runtime(self) -> float:
        return self.total_runtime / self.calls if self.calls else 0.0


@dataclass
class _Entry:
    handler: WorkHandler
    is_async: bool
    metrics: HandlerMetrics
    at_once: bool = False  # an `async def` that cannot wait (`_never_waits`)


def _failed(exc: Exception) -> WorkResponse:
    """A handler's failure as the response's error, as in Go."""
    log.debug("work handler failed", exc_info=True)
    return WorkResponse(error=str(exc) or type(exc).__name__)


def _is_async_callable(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


def _never_waits(fn: Any) -> bool:
    """True for an `async def` function whose own code cannot suspend: it holds no YIELD_VALUE,
    which every `await`, `async for` and `async with` compiles to. Awaiting it runs it to its end
    in the step that starts it, so no timeout and no cancel could interrupt it anyway."""
    code = getattr(fn, "__code__", None)
    if code is None or not inspect.iscoroutinefunction(fn):
        return False
    return all(ins.opname != "YIELD_VALUE" for ins in dis.get_instructions(code))


class WorkHandlerManager:
    """Registers handlers per work type, executes them locally and distributes work to peers."""

    def __init__(
        self,
        config: WorkerConfig = WorkerConfig(),
        *,
        directory: WorkerDirectory | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.directory = directory
        self._rng = rng or random.Random()
        self._clock = clock
        self._handlers: dict[str, _Entry] = {}
        self._failures: dict[str, float] = {}  # peer (str) -> clock time of its last failure
        self._limiter: anyio.CapacityLimiter | None = None
        # Metrics (p2p.metrics.Metrics.work_done) when asked for: called once per request, never
        # per byte; None costs one test per request.
        self.observer: Callable[[str, str, float, str | None], None] | None = None

    # --- registry ---------------------------------------------------------------------------------

    def add_handler(self, work_type: str, handler: WorkHandler, *, is_async: bool | None = None) -> None:
        """Register (or replace) the handler of `work_type`; async-ness is detected unless given."""
        if not callable(handler):
            raise TypeError(f"handler for {work_type!r} is not callable")
        flag = _is_async_callable(handler) if is_async is None else is_async
        self._handlers[work_type] = _Entry(handler, flag, HandlerMetrics(),
                                           at_once=flag and _never_waits(handler))

    def remove_handler(self, work_type: str) -> None:
        self._handlers.pop(work_type, None)

    def has_handler(self, work_type: str) -> bool:
        return work_type in self._handlers

    def answers_at_once(self, work_type: str) -> bool:
        """True when the handler of `work_type` cannot wait (an `async def` without `await`,
        `async for` or `async with`): its work ends in the loop turn it starts in, before a
        timeout or anything watching it could act, so it needs neither."""
        entry = self._handlers.get(work_type)
        return entry is not None and entry.at_once

    def work_types(self) -> list[str]:
        return sorted(self._handlers)

    def metrics(self, work_type: str) -> HandlerMetrics:
        """A snapshot of the counters of `work_type` (KeyError if none is registered)."""
        return replace(self._handlers[work_type].metrics)

    def all_metrics(self) -> dict[str, HandlerMetrics]:
        return {wt: replace(e.metrics) for wt, e in self._handlers.items()}

    # --- local execution --------------------------------------------------------------------------

    def work_timeout(self, timeout: float | None = None) -> float:
        """Seconds `execute_work(timeout=timeout)` gives the work (None: the configured one)."""
        return self.config.worker_response_timeout if timeout is None else timeout

    async def execute_work(self, request: WorkRequest, *, timeout: float | None = None,
                           scope: anyio.CancelScope | None = None,
                           deadline_by_caller: bool = False) -> WorkResponse:
        """Run the handler of `request.work_type` under `timeout` (default: worker_response_timeout).

        `scope`, a cancel scope of the caller's not yet entered, is the one the handler runs in
        (its deadline set to the timeout): a caller that may also have to stop the work (the
        worker protocol, when the requester goes away) cancels it, with no scope of its own
        around this one (one scope per request, where two cost ~5 % of a small request's CPU).
        Work so cancelled before its deadline is answered `work cancelled` (for the caller
        only: nobody waits for it) and counted as neither a timeout nor an error.
        `deadline_by_caller`: the caller sets the scope's deadline itself (`work_timeout()` from
        the start), e.g. only once the work has outlived a loop turn: a handler that answers at
        once then costs no timer (one loop timer set and cancelled per request otherwise).
        Without a scope, a handler that cannot wait (`answers_at_once`) runs in none at all.
        """
        entry = self._handlers.get(request.work_type)
        if entry is None:
            if self.observer is not None:
                self.observer("executed", request.work_type, 0.0, ERR_HANDLER_NOT_FOUND)
            return WorkResponse(error=ERR_HANDLER_NOT_FOUND)
        metrics = entry.metrics
        start = self._clock()
        response: WorkResponse | None = None
        cancelled = False
        try:
            if scope is None and entry.at_once:  # ends in this step: no scope, no timer
                try:  # (the handler called here, not through `_call`: a frame less a request)
                    result = await entry.handler(bytes(request.data))
                except Exception as exc:
                    response = _failed(exc)
                else:
                    response = (result if type(result) is WorkResponse
                                else await self._settle_at_once(result, timeout))
            else:
                if scope is None:
                    scope = anyio.move_on_after(self.work_timeout(timeout))
                elif not deadline_by_caller:
                    scope.deadline = current_time() + self.work_timeout(timeout)
                with scope:
                    response = await self._call(entry, bytes(request.data))
                cancelled = response is None and anyio.current_time() < scope.deadline
        finally:
            metrics.calls += 1
            metrics.total_runtime += max(0.0, self._clock() - start)
        if cancelled:
            return WorkResponse(error=ERR_CANCELLED)  # the caller's cancel, not the timeout
        if response is None:
            metrics.timeouts += 1
            metrics.errors += 1
            response = WorkResponse(error=ERR_TIMED_OUT)
        elif response.error:
            metrics.errors += 1
        if self.observer is not None:
            self.observer("executed", request.work_type, self._clock() - start, response.error)
        return response

    async def _call(self, entry: _Entry, data: bytes) -> WorkResponse:
        """The handler's answer, in the caller's scope (see `_settle_at_once` for a handler that
        cannot wait)."""
        try:
            if entry.is_async:
                result = await entry.handler(data)
            else:
                if self._limiter is None:
                    self._limiter = anyio.CapacityLimiter(self.config.max_handler_threads)
                result = await anyio.to_thread.run_sync(
                    entry.handler, data, abandon_on_cancel=True, limiter=self._limiter
                )
            # (a sync callable may return a coroutine; a WorkResponse needs no ABC check)
            if type(result) is not WorkResponse and inspect.isawaitable(result):
                result = await result
        except Exception as exc:  # a handler's failure is the response's error, as in Go
            return _failed(exc)
        return result if isinstance(result, WorkResponse) else WorkResponse(data=result)

    async def _settle_at_once(self, result: Any, timeout: float | None) -> WorkResponse | None:
        """An at-once handler's result that is not a WorkResponse as one; None when it is an
        awaitable (which may wait: awaited under `work_timeout(timeout)`, a requester leaving
        meanwhile not noticed, as the worker protocol watches no at-once work) that timed out."""
        try:
            if inspect.isawaitable(result):
                with anyio.move_on_after(self.work_timeout(timeout)):
                    awaited = await result
                    return awaited if isinstance(awaited, WorkResponse) else WorkResponse(data=awaited)
                return None
        except Exception as exc:
            return _failed(exc)
        return result if isinstance(result, WorkResponse) else WorkResponse(data=result)

    # --- distribution -----------------------------------------------------------------------------

    def _ordered_remote_peers(self, work_type: str) -> list[Any]:
        assert self.directory is not None
        local = str(self.directory.local_peer_id)
        seen: set[str] = set()
        peers = []
        for peer in self.directory.eligible_peers(work_type):
            key = str(peer)
            if key != local and key not in seen:
                seen.add(key)
                peers.append(peer)
        self._rng.shuffle(peers)
        now = self._clock()
        backoff = self.config.failure_backoff
        for key in [k for k, t in self._failures.items() if now - t >= backoff]:
            del self._failures[key]  # keep the failure table as small as the recent failures

        def recent_failure(peer: Any) -> float:
            failed_at = self._failures.get(str(peer))
            if failed_at is None or now - failed_at >= backoff:
                return -math.inf  # healthy: keep shuffled order, ahead of recent failures
            return failed_at  # recent failures last, the most recent one at the very end

        peers.sort(key=recent_failure)  # stable: shuffled order kept within each group
        return peers

    async def _try_remote(self, peer: Any, request: WorkRequest) -> WorkResponse:
        if self.observer is None:
            return await self._send_remote(peer, request)
        start = self._clock()
        response = await self._send_remote(peer, request)
        self.observer("sent", request.work_type, self._clock() - start, response.error)
        return response

    async def _send_remote(self, peer: Any, request: WorkRequest) -> WorkResponse:
        assert self.directory is not None
        cfg = self.config
        try:
            with anyio.fail_after(cfg.worker_timeout):
                return await self.directory.send_work(
                    peer,
                    request,
                    connect_timeout=cfg.connection_timeout,
                    response_timeout=cfg.worker_response_timeout,
                )
        except TimeoutError:
            return WorkResponse(error=f"no response within {cfg.worker_timeout} s")
        except Exception as exc:  # whatever a transport raises, it is this worker's failure
            return WorkResponse(error=str(exc) or type(exc).__name__)

    async def distribute_work(self, request: WorkRequest) -> WorkResponse:
        """Remote workers first (shuffled, failed-recently last, at most max_remote_workers), then local."""
        errors: list[str] = []
        if self.directory is not None:
            for peer in self._ordered_remote_peers(request.work_type)[: self.config.max_remote_workers]:
                response = await self._try_remote(peer, request)
                if not response.error:
                    self._failures.pop(str(peer), None)
                    return response
                self._failures[str(peer)] = self._clock()
                log.info("remote worker %s failed: %s", peer, bounded(response.error))
                errors.append(f"Worker {peer}: {bounded(response.error)}")
        if self.has_handler(request.work_type):
            response = await self.execute_work(request)
            if not response.error:
                if not response.worker_peer_id and self.directory is not None:
                    response = replace(response, worker_peer_id=str(self.directory.local_peer_id))
                return response
            errors.append(f"Local worker: {response.error}")
        if not errors:
            return WorkResponse(error=ERR_NO_WORKERS)
        return WorkResponse(error=ERR_ALL_FAILED + "; ".join(errors))
