"""The web handler's reader of one HTML page (title, visible text, links), in a module of its own
so that html.parser is imported on the first page fetched, not when a node starts."""

from __future__ import annotations

from html.parser import HTMLParser

__all__ = ["PageParser"]


class PageParser(HTMLParser):
    """Collects the title, visible text and link targets of one HTML page."""

    _HIDDEN = frozenset({"script", "style", "noscript", "template"})

    def __init__(self, max_links: int) -> None:
        super().__init__(convert_charrefs=True)
        self.max_links = max_links
        self.title: list[str] = []
        self.text: list[str] = []
        self.links: list[str] = []
        self._in_title = False
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self._HIDDEN:
            self._hidden += 1
        elif tag == "a" and len(self.links) < self.max_links:
            href = dict(attrs).get("href")
            if href:
                self.links.append(href.strip())

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self._HIDDEN and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._hidden and data.strip():
            self.text.append(data)
