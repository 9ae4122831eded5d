"""Open the course site in headless Chromium, as a student would, and say what is wrong with it.

    report = check_site(site_dir, out_dir, search_word="RePaint",
                        search_page="lessons/03_diffusion_inpainting.html")

* **Every internal link resolves**: every ``href``/``src`` of every page (anchors, images, scripts,
  styles) that stays inside the site names a file that exists, and a ``#fragment`` an id on that page.
* **Nothing off the machine**: every page is loaded from ``file://`` (as from a zip on a student's
  disk) with Chromium's DevTools protocol logging each request the page makes (``Network.requestWillBeSent``,
  logged before anything could leave); a request for anything other than ``file:``, ``data:``, ``blob:`` or
  the loopback address is a problem. The browser also resolves no host name, so nothing could leave anyway.
* **The home page renders every lesson card with its thumbnail** (each ``<img>`` decoded, non-empty).
* **Formulas are typeset**: MathJax finishes on every notebook page, and no formula shows a TeX error.
* **Search works**: ``search_word`` typed into the search box finds ``search_page`` (``search_hits`` lists
  what it found).
* **Screenshots**: ``home.png`` (the whole home page), ``lesson.png`` and ``exercise.png`` (their first
  screens), and ``report.json``, in ``out_dir``.

Only the Python standard library and ``websocket-client`` are used to speak the DevTools protocol, so it
needs no browser download: Debian's ``chromium`` package (``apt-get install chromium``).
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

LOCAL_SCHEMES = {"file", "data", "blob", "about"}
LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}
VIEWPORT = (1280, 900)


class SiteCheckError(RuntimeError):
    """The browser could not be started or driven (not a problem found in the site)."""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class _Links(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.refs: list[tuple[str, str]] = []  # (tag, url)
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) and not (tag == "link" and key == "href" and attrs.get("rel") in ("canonical",)):
                self.refs.append((tag, attrs[key]))


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def link_problems(site: Path) -> tuple[list[str], int]:
    """(every broken internal link or off-site resource, as 'page: what'; the number of links checked)."""
    site = site.resolve()
    pages = {p: _parse(p) for p in sorted(site.rglob("*.html"))}
    problems, checked = [], 0
    for page, parsed in pages.items():
        name = page.relative_to(site).as_posix()
        for tag, url in parsed.refs:
            parts = urlsplit(url)
            if parts.scheme in ("http", "https") or url.startswith("//"):
                if tag != "a":  # a link a student may click is fine; a resource the page loads is not
                    problems.append(f"{name}: <{tag}> loads {url} from off the machine")
                continue
            if parts.scheme in ("mailto", "data", "javascript", "blob"):
                continue
            checked += 1
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if site not in target.parents and target != site:
                problems.append(f"{name}: {url} points outside the site")
            elif not target.is_file():
                problems.append(f"{name}: {url} does not exist")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    problems.append(f"{name}: {url}: no #{parts.fragment} on that page")
    return problems, checked


class _Browser:
    """Just enough of the DevTools protocol: one page target, commands and their events."""

    def __init__(self, chromium: str, workdir: Path):
        import websocket

        self.profile = workdir / "profile"
        self.proc = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-extensions", "--disable-default-apps", "--mute-audio",
             "--host-resolver-rules=MAP * ~NOTFOUND", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise SiteCheckError(f"{chromium} did not start (exit {self.proc.returncode}).")
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=60, suppress_origin=True)
        self.next_id, self.events = 0, []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Network", "Runtime"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=VIEWPORT[0], height=VIEWPORT[1],
                  deviceScaleFactor=1, mobile=False)

    def call(self, method: str, session: bool = False, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise SiteCheckError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise SiteCheckError(f"script failed: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, seconds: float = 15.0):
        deadline = time.monotonic() + seconds
        while True:
            value = self.js(expression)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.1)

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("document.readyState === 'complete'", 30)

    def screenshot(self, dest: Path, full: bool, max_height: int = 1400) -> None:
        height = VIEWPORT[1]
        if full:
            height = min(int(self.js("document.documentElement.scrollHeight")), 8000)
        height = min(height, max_height) if not full else height
        shot = self.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=full,
                         clip={"x": 0, "y": 0, "width": VIEWPORT[0], "height": height, "scale": 1})
        dest.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            if getattr(self, "ws", None):
                self.ws.close()
        finally:  # the browser and its helper processes (its own process group), before its profile is removed
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, sig)
                try:
                    self.proc.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    continue
                deadline = time.monotonic() + wait
                while _group_alive(self.proc.pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not _group_alive(self.proc.pid):
                    break


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


MATHJAX_DONE = ("!window.MathJax || !MathJax.Hub || (MathJax.Hub.queue && MathJax.Hub.queue.pending === 0"
                " && !MathJax.Hub.queue.running)")
FORMULAS = ("({typeset: document.querySelectorAll('.MathJax, .MathJax_Display, .MathJax_Preview + script').length,"
            " errors: document.querySelectorAll('.MathJax_Error, merror, .noError').length,"
            " loaded: !!(window.MathJax && MathJax.Hub)})")
CARDS = """Array.from(document.querySelectorAll('.lesson-card')).map(card => {
  const img = card.querySelector('.thumb img');
  return {id: card.id, title: (card.querySelector('h3') || {}).textContent,
          thumb: img ? img.getAttribute('src') : null,
          thumb_ok: !!(img && img.complete && img.naturalWidth > 0 && img.getBoundingClientRect().width > 0)};
})"""
SEARCH_HITS = """Array.from(document.querySelectorAll('.md-search-result__item a, a.md-search-result__link'))
  .map(a => ({href: a.href, text: a.textContent.trim().slice(0, 120)}))"""


def check_site(site: Path, out_dir: Path, *, chromium: str | None = None, search_word: str | None = None,
               search_page: str | None = None, lesson_page: str | None = None,
               exercise_page: str | None = None) -> dict:
    """Check the site in headless Chromium; write screenshots and report.json into ``out_dir``.

    ``search_page`` (site-relative, e.g. ``lessons/03_diffusion_inpainting.html``): a page the search
    for ``search_word`` must find. Returns the report: ``problems`` (empty when all is well), ``requests``
    (how many URLs the pages asked for), ``off_machine``, ``cards``, ``formulas`` per page,
    ``search_hits``, ``links_checked``, ``seconds``."""
    import websocket

    start = time.perf_counter()
    site = Path(site).resolve()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chromium = chromium or find_chromium()
    if chromium is None:
        raise SiteCheckError("Chromium is not installed (Debian: apt-get install chromium).")
    problems, links_checked = link_problems(site)
    pages = sorted(site.rglob("*.html"))
    lessons = [p for p in pages if p.parent.name == "lessons"]
    exercises = [p for p in pages if p.parent.name == "exercises"]
    report = {"site": str(site), "pages": len(pages), "links_checked": links_checked, "requests": 0,
              "off_machine": [], "failed_loads": [], "cards": [], "formulas": {}, "search_word": search_word,
              "search_hits": [], "screenshots": {}}
    requested = set()
    with tempfile.TemporaryDirectory(prefix="site-check-", ignore_cleanup_errors=True) as tmp:
        browser = _Browser(chromium, Path(tmp))
        try:
            for page in pages:
                name = page.relative_to(site).as_posix()
                browser.open(page.as_uri())
                if page.parent.name in ("lessons", "exercises"):
                    browser.wait_for(MATHJAX_DONE, 20)
                    formulas = browser.js(FORMULAS)
                    report["formulas"][name] = formulas
                    if formulas["errors"]:
                        problems.append(f"{name}: {formulas['errors']} formula(s) show a TeX error")
                if name == "index.html":
                    report["cards"] = browser.wait_for(
                        f"(() => {{ const c = {CARDS}; return c.length && c.every(x => x.thumb_ok || !x.thumb)"
                        f" ? c : null; }})()", 10) or browser.js(CARDS)
                    for card in report["cards"]:
                        if not card["thumb"]:
                            problems.append(f"index.html: the card {card['title']!r} has no thumbnail")
                        elif not card["thumb_ok"]:
                            problems.append(f"index.html: the thumbnail of {card['title']!r} does not show")
                    if not report["cards"]:
                        problems.append("index.html: no lesson cards")
                    browser.screenshot(out_dir / "home.png", full=True)
                    report["screenshots"]["home"] = str(out_dir / "home.png")
                _collect(browser.events, name, requested, report)
            for key, chosen, candidates in (("lesson", lesson_page, lessons), ("exercise", exercise_page, exercises)):
                target = site / chosen if chosen else (candidates[0] if candidates else None)
                if target is not None and target.is_file():
                    browser.open(target.as_uri())
                    browser.wait_for(MATHJAX_DONE, 20)
                    browser.screenshot(out_dir / f"{key}.png", full=False)
                    report["screenshots"][key] = str(out_dir / f"{key}.png")
            if search_word:
                report["search_hits"] = _search(browser, site, search_word)
                _collect(browser.events, "search", requested, report)
                if not report["search_hits"]:
                    problems.append(f"search: typing {search_word!r} into the search box found nothing")
                elif search_page and not any(urlsplit(hit["href"]).path.endswith("/" + search_page)
                                             for hit in report["search_hits"]):
                    problems.append(f"search: typing {search_word!r} found {len(report['search_hits'])} hits, "
                                    f"none on {search_page}")
        except (OSError, ValueError, websocket.WebSocketException) as err:  # a browser that died or hung
            raise SiteCheckError(f"Chromium stopped answering ({type(err).__name__}: {err}).") from None
        finally:
            browser.close()
    report["requests"] = len(requested)
    problems += [f"{page}: requested {url} from off the machine" for page, url in report["off_machine"]]
    problems += [f"{page}: could not load {url} ({why})" for page, url, why in report["failed_loads"]]
    report["problems"] = problems
    report["seconds"] = round(time.perf_counter() - start, 1)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    return report


def _collect(events: list, page: str, requested: set, report: dict) -> None:
    urls = {}
    for event in events:
        params = event.get("params", {})
        if event.get("method") == "Network.requestWillBeSent":
            url = params["request"]["url"]
            urls[params["requestId"]] = url
            requested.add(url)
            parts = urlsplit(url)
            if parts.scheme not in LOCAL_SCHEMES and (parts.hostname or "") not in LOCAL_HOSTS:
                report["off_machine"].append((page, url))
        elif event.get("method") == "Network.loadingFailed" and not params.get("canceled"):
            url = urls.get(params["requestId"], "?")
            if urlsplit(url).scheme == "file":
                report["failed_loads"].append((page, url, params.get("errorText", "")))
    events.clear()


def _search(browser: _Browser, site: Path, word: str) -> list[dict]:
    """Type ``word`` into Material's search box on the home page, as a student would; the hits."""
    browser.open((site / "index.html").as_uri())
    browser.wait_for("!!document.querySelector('.md-search__input')", 10)
    browser.js("(() => { const t = document.querySelector('label[for=\"__search\"]');"
               " const i = document.querySelector('.md-search__input'); if (t) t.click(); i.focus(); return 1; })()")
    browser.call("Input.insertText", session=True, text=word)
    deadline = time.monotonic() + 40
    while True:  # typed before the search index was ready? Material searches again on the next keystroke
        hits = browser.wait_for(f"(() => {{ const h = {SEARCH_HITS}; return h.length ? h : null; }})()", 4)
        if hits or time.monotonic() > deadline:
            return hits or []
        browser.js("(() => { const i = document.querySelector('.md-search__input'); i.focus();"
                   " for (const k of ['keydown', 'keyup']) i.dispatchEvent(new KeyboardEvent(k, {key: 'End',"
                   " bubbles: true})); i.dispatchEvent(new Event('input', {bubbles: true})); return 1; })()")
