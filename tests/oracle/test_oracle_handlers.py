"""Built-in handlers (test, web against a local http.server) and plug-in loading."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import anyio
import pytest

from oracle.handlers import (
    HandlerLoadError,
    WebConfig,
    default_handlers,
    handle_test,
    load_handler,
    make_web_handler,
)
from oracle.messages import WorkResponse

PAGES = {
    "/": (
        "text/html; charset=utf-8",
        "<html><head><title> Home  page </title><script>var hidden = 1;</script>"
        "<style>p {}</style></head><body><p>Hello <b>world</b> &amp; friends</p>"
        '<a href="/a">A</a> <a href="b.html#top">B</a> <a href="/a">A again</a>'
        '<a href="http://other.invalid/x">external</a> <a href="mailto:x@y">mail</a></body></html>',
    ),
    "/a": ("text/html", '<title>A</title><p>page a</p><a href="/c">C</a> <a href="/">home</a>'),
    "/b.html": ("text/html", "<title>B</title><p>page b</p>"),
    "/c": ("text/html", "<title>C</title><p>page c</p>"),
    "/big": ("text/html", "<title>Big</title><p>" + "x" * 5000 + "</p>"),
    "/plain": ("text/plain", "just   text"),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        page = PAGES.get(self.path)
        if page is None:
            self.send_error(404)
            return
        body = page[1].encode()
        self.send_response(200)
        self.send_header("Content-Type", page[0])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _web(**kw: object):
    return make_web_handler(WebConfig(use_env_proxy=False, fetch_timeout=5, **kw))  # type: ignore[arg-type]


def _ask(handler, url: str, depth: object = 0) -> WorkResponse:  # type: ignore[no-untyped-def]
    return handler(json.dumps({"url": url, "depth": depth}).encode())


def test_test_handler_returns_go_string() -> None:
    assert anyio.run(handle_test, b"hello") == WorkResponse(data="hello")
    assert anyio.run(handle_test, b"\xff").to_json() == b'{"data":"\\ufffd"}'
    assert set(default_handlers()) == {"test", "web"}


def test_web_depth_zero(site: str) -> None:
    resp = _ask(_web(), site + "/")
    assert resp.error == "" and resp.record_count == 1
    (page,) = resp.data["pages"]
    assert page["title"] == "Home page"
    assert page["text"] == "Hello world & friends A B A again external mail"
    assert "hidden" not in page["text"]
    assert page["links"] == [site + "/a", site + "/b.html", "http://other.invalid/x"]
    assert page["depth"] == 0


def test_web_follows_same_host_links_to_depth(site: str) -> None:
    resp = _ask(_web(), site + "/", 1)
    assert [p["title"] for p in resp.data["pages"]] == ["Home page", "A", "B"]
    resp = _ask(_web(), site + "/", 2.9)  # Go truncates the float64 depth
    assert [(p["title"], p["depth"]) for p in resp.data["pages"]] == [("Home page", 0), ("A", 1), ("B", 1), ("C", 2)]
    assert resp.record_count == 4
    json.dumps(resp.data)  # JSON-encodable


def test_web_bounds(site: str) -> None:
    assert len(_ask(_web(max_pages=2), site + "/", 2).data["pages"]) == 2
    assert len(_ask(_web(max_depth=1), site + "/", 50).data["pages"]) == 3  # depth capped
    big = _ask(_web(max_body_bytes=1000), site + "/big").data["pages"][0]
    assert big["truncated"] is True and len(big["text"]) < 1000
    assert _ask(_web(), site + "/plain").data["pages"][0]["text"] == "just text"


def test_web_errors(site: str) -> None:
    web = _web()
    assert _ask(web, site + "/missing").error == "unable to get web data: HTTP Error 404: Not Found"
    assert web(b"not json").error.startswith("unable to parse web data:")
    assert web(b"[1]").error == "unable to parse web data: expected a JSON object"
    assert _ask(web, "file:///etc/passwd").error == "unable to parse web data: url must be an http(s) URL"
    assert _ask(web, site, "deep").error == "unable to parse web data: depth must be a number"


def test_web_broken_sub_page_is_reported_not_fatal(site: str) -> None:
    PAGES["/broken-links"] = ("text/html", '<a href="/nowhere">x</a><a href="/c">c</a>')
    try:
        resp = _ask(_web(), site + "/broken-links", 1)
    finally:
        del PAGES["/broken-links"]
    assert [p["url"] for p in resp.data["pages"]] == [site + "/broken-links", site + "/c"]
    assert resp.data["errors"] == [{"url": site + "/nowhere", "error": "HTTP Error 404: Not Found"}]


def test_load_handler() -> None:
    dumps = load_handler("json:dumps")
    assert dumps is json.dumps
    plugin = load_handler("oracle_fakes:PluginHandler")
    assert plugin(b"abc") == "ABC"
    assert load_handler("oracle.handlers:handle_test") is handle_test


@pytest.mark.parametrize(
    "spec, message",
    [
        ("json", "is not 'package.module:callable'"),
        (":dumps", "is not 'package.module:callable'"),
        ("no_such_module_xyz:f", "cannot import"),
        ("json:nope", "has no attribute"),
        ("json:__doc__", "is not callable"),
    ],
)
def test_load_handler_errors(spec: str, message: str) -> None:
    with pytest.raises(HandlerLoadError, match=message):
        load_handler(spec)
