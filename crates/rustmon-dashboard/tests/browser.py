#!/usr/bin/env python3
"""Browser test of the rustmon dashboard in headless Chromium, driven over WebDriver
(chromedriver) with the Python standard library only.

    python3 browser.py --base http://127.0.0.1:7070 --out docs/screenshots

Expects a collector with the dashboard and the demo data (the `dashboard_demo` example; see
ci.sh). Checks: every page loads with no console errors and no uncaught exceptions, the
services page lists the services, charts show values on hover, the trace page renders a
waterfall with database children, N+1 marks and collapse/expand, markup from agents is shown
as text, the settings page refuses invalid JSON, saves a change that the API then returns and
the (simulated) agent reports as applied; a screenshot of each page is written.
"""
import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=60):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Browser:
    def __init__(self, chromium, chromedriver):
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="rustmon-chromium-")
        self.driver = subprocess.Popen([chromedriver, f"--port={self.port}"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                if http("GET", self.url + "/status", timeout=2)[1]["value"]["ready"]:
                    break
            except (OSError, ValueError, KeyError, TypeError):
                pass
            time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium,
                                   "args": FLAGS + [f"--user-data-dir={self.profile}",
                                                    "--window-size=1280,900"]},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}}
        st, v = http("POST", self.url + "/session", caps)
        if st != 200:
            raise RuntimeError(f"cannot start a browser session: {v}")
        self.sid = v["value"]["sessionId"]

    def cmd(self, method, path, body=None):
        st, v = http(method, f"{self.url}/session/{self.sid}{path}", body)
        if st != 200:
            raise RuntimeError(f"{method} {path}: {v}")
        return v["value"]

    def go(self, url):
        self.cmd("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait(self, script, what, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            v = self.js(script)
            if v:
                return v
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; page: {self.js('return document.body.innerText.slice(0, 800)')}")

    def logs(self):
        return self.cmd("POST", "/se/log", {"type": "browser"})

    def size(self, w, h):
        self.cmd("POST", "/window/rect", {"width": w, "height": h})

    def screenshot(self, path, width=1280):
        h = self.js("return Math.ceil(document.documentElement.scrollHeight)")
        self.size(width, max(600, min(int(h) + 20, 3200)))
        time.sleep(0.3)
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.cmd("GET", "/screenshot")))
        self.size(1280, 900)

    def close(self):
        try:
            http("DELETE", f"{self.url}/session/{self.sid}", timeout=10)
        except OSError:
            pass
        self.driver.terminate()
        try:
            self.driver.wait(10)
        except subprocess.TimeoutExpired:
            self.driver.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


LOADED = """
const c = document.querySelector('#content');
return !!c && !c.querySelector('.loading') && document.querySelector('#updated') &&
  document.querySelector('#updated').textContent.startsWith('updated') && c.innerText.length > 0;
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="dashboard origin, e.g. http://127.0.0.1:7070")
    ap.add_argument("--out", default="docs/screenshots")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--chromedriver", default=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    ap.add_argument("--empty", action="store_true", help="the collector has no data: check the empty states")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    base = a.base.rstrip("/")
    if a.empty:
        return empty_states(a, base)
    st, traces = http("GET", base + "/api/v1/traces?service=checkout&name=POST%20/orders&from=-2h&sort=slowest&limit=50")
    assert st == 200, traces
    # a trace whose checkout request ran the N+1 loop often enough to be flagged
    trace = None
    for t in traces["traces"]:
        _, full = http("GET", base + "/api/v1/traces/" + t["trace_id"])
        if any(s["attributes"].get("db.n_plus_one") is True for s in full["spans"]):
            trace = t["trace_id"]
            break
    assert trace, "no N+1 trace in the demo data"

    b = Browser(a.chromium, a.chromedriver)
    failures = []
    try:
        pages = [
            ("services", "/ui/"),
            ("service", "/ui/services/checkout"),
            ("operation", "/ui/services/checkout/operation?kind=server&name=POST%20%2Forders"),
            ("trace", f"/ui/traces/{trace}"),
            ("database", "/ui/database/checkout"),
            ("external", "/ui/external/checkout"),
            ("runtime", "/ui/runtime/checkout"),
            ("errors", "/ui/errors"),
            ("map", "/ui/map"),
            ("settings", "/ui/settings/checkout"),
            ("catalog", "/ui/services/catalog"),
        ]
        b.logs()  # drop anything from startup
        for name, path in pages:
            b.go(base + path)
            b.wait(LOADED, f"{name} to load")
            err = b.js("return document.querySelector('#content .error-box') && document.querySelector('#content .error-box').innerText")
            if err:
                failures.append(f"{name}: {err}")

            if name == "services":
                names = b.js("return Array.from(document.querySelectorAll('table[data-table=services] tbody tr td:first-child a')).map(a => a.textContent)")
                for s in ("frontend", "checkout", "catalog"):
                    if s not in names:
                        failures.append(f"services page does not list {s}: {names}")
                if b.js("return document.querySelectorAll('svg.spark').length") < 3:
                    failures.append("services page: sparklines missing")
            if name in ("service", "operation", "runtime"):
                # hover a chart: the tooltip shows a time and values
                tip = b.js("""
                  const el = document.querySelector('[data-chart]'); const r = el.querySelector('rect.hover').getBoundingClientRect();
                  const ev = new PointerEvent('pointermove', {bubbles: true, clientX: r.left + r.width * 0.6, clientY: r.top + r.height / 2});
                  el.querySelector('rect.hover').dispatchEvent(ev);
                  const t = el.querySelector('.tip'); return t && !t.hidden ? t.innerText : null;""")
                if not tip or ":" not in tip:
                    failures.append(f"{name}: no hover values on the chart ({tip!r})")
            if name == "service":
                n = b.js("return document.querySelectorAll('table[data-table=ops] tbody tr').length")
                if n < 5:
                    failures.append(f"service page: {n} operations")
                # sort by p95 (click twice: descending, then ascending)
                b.js("document.querySelector('table[data-table=ops] th[data-key=p95_ms]').click()")
                b.wait("return document.querySelector('table[data-table=ops] th[data-key=p95_ms].desc')", "sort by p95")
            if name == "trace":
                rows = b.js("return document.querySelectorAll('.wf-row').length")
                depth = b.js("return Math.max(...Array.from(document.querySelectorAll('.wf-name')).map(e => parseInt(e.style.paddingLeft)))")
                db = b.js("return Array.from(document.querySelectorAll('.wf-row .label')).filter(e => e.textContent.includes('SELECT order_items')).length")
                np = b.js("return document.querySelectorAll('.wf-row .badge.np').length")
                if rows < 8 or depth < 3 * 14 or db < 5:
                    failures.append(f"trace: waterfall too small: {rows} rows, depth {depth}px, {db} database children")
                if np < 1:
                    failures.append("trace: no N+1 mark")
                # collapse the checkout request, then expand again
                b.js("""const r = Array.from(document.querySelectorAll('.wf-row')).find(r => r.innerText.includes('POST /orders'));
                        r.querySelector('[data-tog]').click();""")
                after = b.js("return document.querySelectorAll('.wf-row').length")
                if not after < rows:
                    failures.append(f"trace: collapse did not hide children ({rows} -> {after})")
                b.js("document.querySelector('#expand').click()")
                if b.js("return document.querySelectorAll('.wf-row').length") != rows:
                    failures.append("trace: expand all did not restore the rows")
                # open the details of the first N+1 span
                b.js("Array.from(document.querySelectorAll('.wf-row')).find(r => r.querySelector('.badge.np')).click()")
                b.wait("return document.querySelector('.wf-detail')", "span details")
                txt = b.js("return document.querySelector('.wf-detail').innerText")
                if "db.query.text" not in txt or "N+1" not in txt:
                    failures.append(f"trace: details lack the statement or the N+1 note: {txt[:300]}")
            if name == "database":
                if b.js("return document.querySelectorAll('table[data-table=queries] tbody tr').length") < 4:
                    failures.append("database: too few statements")
                b.js("Array.from(document.querySelectorAll('[data-fp]')).find(a => a.textContent.includes('order_items')).click()")
                b.wait("return document.body.innerText.includes('Slowest executions') && !document.querySelector('#content .loading')", "statement drill-down")
            if name == "external":
                dests = b.js("return document.querySelector('table[data-table=dests]').innerText")
                for d in ("api.payments.example:443", "redis.internal:6379"):
                    if d not in dests:
                        failures.append(f"external: {d} missing")
            if name == "errors":
                txt = b.js("return document.querySelector('table[data-table=errors]').innerText")
                if "checkout::PaymentError" not in txt:
                    failures.append(f"errors: payment errors not grouped: {txt[:300]}")
            if name == "map":
                if b.js("return document.querySelectorAll('.map path.edge').length") < 4:
                    failures.append("map: edges missing")
            if name == "catalog":
                # a route name carrying markup is text, never an element
                if b.js("return document.querySelectorAll('#content img').length") != 0:
                    failures.append("catalog: markup from span names became elements")
                if "<img src=x onerror=alert(1)>" not in b.js("return document.querySelector('#content').innerText"):
                    failures.append("catalog: the hostile route name is not shown as text")
            if name == "settings":
                b.wait("return document.querySelector('#agents table') || document.querySelector('#agents .muted')", "agents")
                b.js("const t = document.querySelector('#cfg'); t.value = '{\"db\": {\"slow_threshold_ms\": '; t.dispatchEvent(new Event('input'))")
                if not b.js("return document.querySelector('#save').disabled && document.querySelector('#check').innerText.includes('not valid JSON')"):
                    failures.append("settings: invalid JSON not refused")
                b.js("const t = document.querySelector('#cfg'); t.value = '{\"db\": {\"max_rows\": 5000}}'; t.dispatchEvent(new Event('input'))")
                if "max_rows" not in b.js("return document.querySelector('#check').innerText"):
                    failures.append("settings: out-of-range value not flagged")
                _, before = http("GET", base + "/api/v1/config/checkout")
                b.js("const t = document.querySelector('#cfg'); t.value = JSON.stringify({db: {slow_threshold_ms: 250, n_plus_one_threshold: 4}}, null, 2); t.dispatchEvent(new Event('input'))")
                b.js("document.querySelector('#save').click()")
                b.wait("return document.querySelector('#saved').innerText.startsWith('Saved')", "save")
                _, after = http("GET", base + "/api/v1/config/checkout")
                if after["version"] != before["version"] + 1 or after["config"]["db"]["slow_threshold_ms"] != 250:
                    failures.append(f"settings: not saved: {after}")
                b.wait(f"return document.querySelector('#agents').innerText.includes('up to date') && Array.from(document.querySelectorAll('#agents td')).some(td => td.innerText.trim() === '{after['version']}')",
                       "the agent to report the new version", timeout=30)
            b.screenshot(os.path.join(a.out, f"{name}.png"))
            for e in b.logs():
                if e.get("level") in ("SEVERE", "WARNING") and "favicon" not in e.get("message", ""):
                    failures.append(f"{name}: console {e['level']}: {e['message']}")
        # narrow screen
        b.size(390, 800)
        b.go(base + "/ui/services/checkout")
        b.wait(LOADED, "service page on a narrow screen")
        overflow = b.js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if overflow > 2:
            failures.append(f"narrow screen: page is {overflow}px wider than the window")
        b.screenshot(os.path.join(a.out, "service-narrow.png"), width=390)
        for e in b.logs():
            if e.get("level") == "SEVERE":
                failures.append(f"narrow: console: {e['message']}")
    finally:
        b.close()
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print(f"browser test: {len(pages) + 1} pages OK, screenshots in {a.out}")


def empty_states(a, base):
    """With no data, each page explains what to do instead of showing empty tables."""
    b = Browser(a.chromium, a.chromedriver)
    failures = []
    try:
        b.logs()
        for path, want in [("/ui/", "4318"), ("/ui/map", "4318"), ("/ui/errors", "No errors"),
                           ("/ui/services/checkout", "4318"), ("/ui/database", "No services yet"),
                           ("/ui/database/checkout", "No database statements"),
                           ("/ui/runtime/checkout", "runtime plugin"), ("/ui/settings/checkout", "No agent has reported"),
                           ("/ui/traces/0123456789abcdef0123456789abcdef", "Trace not found")]:
            b.go(base + path)
            b.wait(LOADED, path)
            if path.startswith("/ui/settings"):
                b.wait("return !document.querySelector('#agents .loading')", "agents")
            txt = b.js("return document.querySelector('main').innerText")
            if want not in txt:
                failures.append(f"{path}: empty state lacks {want!r}: {txt[:200]}")
            if path == "/ui/":
                b.screenshot(os.path.join(a.out, "empty.png"))
            for e in b.logs():
                # the trace page's API call answers 404 by design; the page explains it
                if e.get("level") == "SEVERE" and not ("404" in e.get("message", "") and "/traces/" in e.get("message", "")):
                    failures.append(f"{path}: console: {e['message']}")
    finally:
        b.close()
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("browser test: empty states OK")


if __name__ == "__main__":
    main()
