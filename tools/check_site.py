"""Checks a built docs site (``mkdocs build``): links, anchors and what the pages render.

    python tools/check_site.py site                      # the built HTML, pure Python (make docs)
    python tools/check_site.py site --browser [--mermaid mermaid.min.js] [--screenshots DIR]   (make docs-check)

Without ``--browser`` every page's HTML is parsed: each internal link and anchor must resolve, each page
must have a title and content, and docstrings must have rendered (no raw reST roles such as ``:class:``,
no ``>>>`` example lines outside code blocks). External links are listed, not fetched (builds run offline).

With ``--browser`` each page is also opened in headless Chromium from a local server: the page must
render its article, and every Mermaid diagram must have been drawn (mkdocs-material replaces each
``<pre class="mermaid">`` by a ``<div class="mermaid">`` once the diagram rendered). Pages load Mermaid
from a CDN; ``--mermaid FILE`` serves a local copy instead, so that the check runs offline.
"""

from __future__ import annotations

import argparse
import functools
import html.parser
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

# A role renders as ":class:" followed by the target in <code>, or stays ":class:`x`" inside a code span.
RAW_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj):(?:`|$)")
SKIP_TEXT_IN = {"code", "pre", "script", "style", "kbd", "samp", "textarea"}


@dataclass
class Page:
    """What one HTML file holds."""

    ids: set[str] = field(default_factory=set)
    links: list[str] = field(default_factory=list)
    title: str = ""
    headings: int = 0
    article_text: int = 0
    mermaid: int = 0
    stray_prompts: list[str] = field(default_factory=list)
    raw_roles: list[str] = field(default_factory=list)
    nested_quotes: int = 0


class PageParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._stack: list[str] = []
        self._in_title = False
        self._article = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id"):
            self.page.ids.add(attributes["id"] or "")
        if tag == "a" and attributes.get("name"):
            self.page.ids.add(attributes["name"] or "")
        for name in ("href", "src"):
            value = attributes.get(name)
            if value and tag in ("a", "img", "script", "link", "iframe"):
                self.page.links.append(value)
        if tag in ("h1", "h2", "h3"):
            self.page.headings += 1
        if tag == "pre" and "mermaid" in (attributes.get("class") or "").split():
            self.page.mermaid += 1
        if tag == "article":
            self._article += 1
        if tag == "blockquote" and "blockquote" in self._stack:  # ">>> x" read as Markdown: nested quotes
            self.page.nested_quotes += 1
        self._in_title = tag == "title"
        if tag not in ("br", "img", "input", "link", "meta", "hr", "source", "wbr", "col", "area", "base"):
            self._stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "article":
            self._article -= 1
        if tag in self._stack:
            while self._stack and self._stack.pop() != tag:
                pass
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.page.title += data
        if SKIP_TEXT_IN & set(self._stack):
            return
        if self._article > 0:
            self.page.article_text += len(data.strip())
        if ">>>" in data:
            self.page.stray_prompts.append(data.strip()[:80])
        for match in RAW_ROLE.finditer(data.rstrip()):
            self.page.raw_roles.append(data[max(0, match.start() - 30) : match.end() + 30].strip())


def parse(path: Path) -> Page:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.page


def target_file(site: Path, page_path: Path, href: str) -> tuple[Path | None, str]:
    """The file an internal ``href`` on ``page_path`` points to, and its fragment."""
    base = "/" + page_path.relative_to(site).as_posix()
    parts = urlsplit(urljoin(base, href))
    path = site / unquote(parts.path).lstrip("/")
    if parts.path.endswith("/") or path.is_dir():
        path = path / "index.html"
    return (path if path.exists() else None), unquote(parts.fragment)


def check_html(site: Path) -> tuple[list[str], dict[Path, Page]]:
    pages = {path: parse(path) for path in sorted(site.rglob("*.html"))}
    problems, external = [], set()
    for path, page in pages.items():
        name = path.relative_to(site).as_posix()
        if name == "404.html":
            continue
        if not page.title.strip() or page.headings == 0 or page.article_text < 40:
            problems.append(f"{name}: renders no content (title {page.title.strip()!r}, {page.headings} headings)")
        for text in page.stray_prompts:
            problems.append(f"{name}: a '>>>' example outside a code block: {text!r}")
        if page.nested_quotes:
            problems.append(f"{name}: {page.nested_quotes} nested block quotes (a '>>>' example read as Markdown)")
        for text in page.raw_roles:
            problems.append(f"{name}: a raw reST role: {text!r}")
        for href in page.links:
            scheme = urlsplit(href).scheme
            if scheme in ("http", "https"):
                external.add(href)
                continue
            if scheme in ("mailto", "data", "javascript"):
                continue
            target, fragment = target_file(site, path, href)
            if target is None:
                problems.append(f"{name}: broken link {href!r}")
            elif fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else parse(target).ids
                if fragment not in ids:
                    problems.append(f"{name}: link {href!r}: no anchor #{fragment} in {target.relative_to(site)}")
    print(
        f"checked {len(pages)} pages: {sum(len(p.links) for p in pages.values())} links, "
        f"{sum(p.mermaid for p in pages.values())} Mermaid diagrams, {len(external)} external links not fetched"
    )
    return problems, pages


class SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the site; with a local Mermaid, each page loads it before mkdocs-material's bundle."""

    mermaid: Path | None = None

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/__check__/mermaid.min.js" and self.mermaid is not None:
            return self._send(self.mermaid.read_bytes(), "application/javascript")
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        if self.mermaid is not None and path.suffix == ".html" and path.exists():
            body = path.read_text(encoding="utf-8")
            body = body.replace("</head>", '<script src="/__check__/mermaid.min.js"></script></head>', 1)
            return self._send(body.encode(), "text/html; charset=utf-8")
        return super().do_GET()

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("check_site: --browser needs Chromium (Debian: apt-get install chromium)")


def browse(browser: str, url: str, profile: str, screenshot: Path | None) -> str:
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
        "--window-size=1280,2400",
    ]
    if screenshot is not None:
        subprocess.run(
            [*command, f"--screenshot={screenshot}", url], capture_output=True, text=True, timeout=120, check=False
        )
    proc = subprocess.run([*command, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False)
    return proc.stdout


def check_browser(site: Path, pages: dict[Path, Page], mermaid: Path | None, screenshots: Path | None) -> list[str]:
    browser = chromium()
    SiteHandler.mermaid = mermaid
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SiteHandler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    problems = []
    if screenshots is not None:
        screenshots.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory() as profile:
            for path, page in pages.items():
                name = path.relative_to(site).as_posix()
                if name == "404.html":
                    continue
                url = f"http://127.0.0.1:{server.server_port}/{name}"
                shot = screenshots / (name.replace("/", "_").removesuffix(".html") + ".png") if screenshots else None
                dom = browse(browser, url, profile, shot)
                parser = PageParser()
                parser.feed(dom)
                rendered = parser.page
                if rendered.article_text < 40:
                    problems.append(f"{name}: the browser rendered no article ({len(dom)} bytes of DOM)")
                drawn = len(re.findall(r'<div class="mermaid"', dom))
                if page.mermaid and (rendered.mermaid or drawn < page.mermaid):
                    problems.append(f"{name}: {page.mermaid - drawn} of {page.mermaid} Mermaid diagrams not drawn")
                print(f"  {name}: rendered" + (f", {drawn} diagrams drawn" if page.mermaid else ""))
    finally:
        server.shutdown()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("site", type=Path)
    parser.add_argument("--browser", action="store_true", help="also render every page in headless Chromium")
    parser.add_argument("--mermaid", type=Path, help="a local mermaid.min.js served instead of the CDN's")
    parser.add_argument("--screenshots", type=Path, help="save a PNG of every page here")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").exists():
        print(f"check_site: {args.site} holds no built site (run mkdocs build)", file=sys.stderr)
        return 2
    problems, pages = check_html(args.site)
    if args.browser:
        os.environ.setdefault("CHROME_LOG_FILE", os.devnull)
        problems += check_browser(args.site, pages, args.mermaid, args.screenshots)
    for problem in problems:
        print(f"check_site: {problem}", file=sys.stderr)
    print(f"check_site: {'OK' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
