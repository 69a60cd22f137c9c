"""Built-in work handlers (`test`, `web`) and loading of user plug-in handlers.

Handlers are plain callables `handler(data: bytes) -> WorkResponse | JSON value`; blocking ones are
fine, the manager runs them in a bounded thread pool under a timeout.

`web` follows masa's web handler: the request data is JSON `{"url": ..., "depth": N}`; the page is
fetched and same-host links are followed breadth-first up to `depth`. Every dimension is bounded
(pages, bytes per page, links per page, text per page, seconds per fetch and in total), because a
remote peer chooses the URL. Note the worker fetches whatever http(s) URL it is given, as masa does:
gate who may submit `web` work (WorkerPolicy) on a node with access to private networks.
"""

from __future__ import annotations

import codecs
import importlib
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urldefrag, urljoin, urlsplit

from oracle.gojson import go_string
from oracle.messages import WorkResponse

__all__ = [
    "HandlerLoadError",
    "WebConfig",
    "default_handlers",
    "handle_test",
    "handle_web",
    "load_handler",
    "make_web_handler",
]


async def handle_test(data: bytes) -> WorkResponse:
    """The `test` work type: answers with the request bytes as a string (Go's string([]byte)).

    Async because it never blocks: a sync handler would cost a worker-thread round trip per call.
    """
    return WorkResponse(data=go_string(data))


# --- web --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebConfig:
    """Bounds of one `web` request (our choices: small enough for one worker thread)."""

    max_depth: int = 2
    max_pages: int = 20
    max_body_bytes: int = 2 << 20
    max_links_per_page: int = 200
    max_text_chars: int = 100_000
    fetch_timeout: float = 10.0
    total_timeout: float = 40.0  # below the 45 s work timeout, so a partial crawl still returns
    user_agent: str = "masa-p2p-python-worker/0.1"
    use_env_proxy: bool = True

    def __post_init__(self) -> None:
        if min(self.max_depth, self.max_pages - 1, self.max_body_bytes, self.max_links_per_page) < 0:
            raise ValueError("web limits must be non-negative (and max_pages >= 1)")
        if not (self.fetch_timeout > 0 and self.total_timeout > 0):
            raise ValueError("web timeouts must be positive")


def _norm_space(parts: list[str]) -> str:
    return " ".join(" ".join(parts).split())


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


def _valid_url(url: object) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class _WebCrawler:
    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self._opener: Any = None

    def _open(self, url: str, timeout: float) -> Any:
        # urllib.request is imported on the first fetch: it pulls in http.client and ssl
        # (~25 ms), which a node that never serves web work should not pay at start-up.
        import urllib.request

        if self._opener is None:
            handlers: list[urllib.request.BaseHandler] = []
            if not self.config.use_env_proxy:
                handlers.append(urllib.request.ProxyHandler({}))
            self._opener = urllib.request.build_opener(*handlers)
        request = urllib.request.Request(url, headers={"User-Agent": self.config.user_agent})
        return self._opener.open(request, timeout=timeout)

    def fetch(self, url: str, timeout: float) -> dict[str, Any]:
        cfg = self.config
        with self._open(url, timeout) as resp:
            body = resp.read(cfg.max_body_bytes + 1)
            final_url = resp.geturl()
            content_type = resp.headers.get_content_type()
            charset = resp.headers.get_content_charset() or "utf-8"
        truncated = len(body) > cfg.max_body_bytes
        text = body[: cfg.max_body_bytes].decode(charset if _known_codec(charset) else "utf-8", "replace")
        page: dict[str, Any] = {"url": final_url, "title": "", "text": "", "links": []}
        if content_type in ("text/html", "application/xhtml+xml"):
            # html.parser (with html.entities) is imported on the first page, like urllib.request:
            # ~2.6% of the instructions of a node's start-up, for web work it may never serve.
            from oracle.webpage import PageParser

            parser = PageParser(cfg.max_links_per_page)
            parser.feed(text)
            parser.close()
            page["title"] = _norm_space(parser.title)
            page["text"] = _norm_space(parser.text)[: cfg.max_text_chars]
            links = []
            for href in parser.links:
                link = urldefrag(urljoin(final_url, href))[0]
                if _valid_url(link) and link not in links:
                    links.append(link)
            page["links"] = links
        elif content_type.startswith("text/"):
            page["text"] = _norm_space([text])[: cfg.max_text_chars]
        if truncated:
            page["truncated"] = True
        return page

    def crawl(self, start: str, depth: int) -> dict[str, Any]:
        cfg = self.config
        deadline = time.monotonic() + cfg.total_timeout
        origin = _origin(start)
        queue: list[tuple[str, int]] = [(start, 0)]
        seen = {start}
        pages: list[dict[str, Any]] = []
        errors: list[dict[str, str]] = []
        while queue and len(pages) < cfg.max_pages:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            url, level = queue.pop(0)
            try:
                page = self.fetch(url, min(cfg.fetch_timeout, remaining))
            except (OSError, ValueError) as exc:  # urllib.error.URLError is an OSError
                if not pages and not errors:
                    raise  # the start page itself failed: the whole work failed
                errors.append({"url": url, "error": str(exc)})
                continue
            page["depth"] = level
            pages.append(page)
            if level >= depth:
                continue
            for link in page["links"]:
                if link not in seen and _origin(link) == origin:
                    seen.add(link)
                    queue.append((link, level + 1))
        result: dict[str, Any] = {"url": start, "depth": depth, "pages": pages}
        if errors:
            result["errors"] = errors
        return result


def _known_codec(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


def make_web_handler(config: WebConfig = WebConfig()) -> Callable[[bytes], WorkResponse]:
    """A `web` handler with the given bounds."""
    crawler = _WebCrawler(config)

    def handle_web(data: bytes) -> WorkResponse:
        try:
            params = json.loads(bytes(data).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            return WorkResponse(error=f"unable to parse web data: {exc}")
        if not isinstance(params, dict):
            return WorkResponse(error="unable to parse web data: expected a JSON object")
        url, depth = params.get("url"), params.get("depth", 0)
        if not isinstance(url, str) or not _valid_url(url):
            return WorkResponse(error="unable to parse web data: url must be an http(s) URL")
        if isinstance(depth, bool) or not isinstance(depth, (int, float)) or not math.isfinite(depth):
            return WorkResponse(error="unable to parse web data: depth must be a number")
        depth = max(0, min(int(depth), config.max_depth))  # Go truncates the float64 to int
        try:
            result = crawler.crawl(url, depth)
        except (OSError, ValueError) as exc:  # urllib.error.URLError is an OSError
            return WorkResponse(error=f"unable to get web data: {exc}")
        return WorkResponse(data=result, record_count=len(result["pages"]))

    return handle_web


handle_web = make_web_handler()


def default_handlers() -> dict[str, Callable[[bytes], Any]]:
    """The built-in handlers by work type."""
    return {"test": handle_test, "web": handle_web}


# --- plug-ins ---------------------------------------------------------------------------------------


class HandlerLoadError(ValueError):
    """A plug-in handler spec could not be resolved to a callable."""


def load_handler(spec: str) -> Callable[[bytes], Any]:
    """Resolve "package.module:attr[.attr]" to a handler.

    A class is instantiated without arguments; an object with a `handle_work` method (Go's
    WorkHandler interface) gives that method; otherwise the object itself must be callable.
    """
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise HandlerLoadError(f"handler spec {spec!r} is not 'package.module:callable'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerLoadError(f"cannot import {module_name!r}: {exc}") from exc
    for name in attr_path.split("."):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise HandlerLoadError(f"{module_name!r} has no attribute {attr_path!r}") from None
    if isinstance(obj, type):
        obj = obj()
    method = getattr(obj, "handle_work", None)
    if callable(method):
        return method  # type: ignore[no-any-return]
    if not callable(obj):
        raise HandlerLoadError(f"{spec!r} is not callable")
    return obj  # type: ignore[no-any-return]
