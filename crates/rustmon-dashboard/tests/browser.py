#!/usr/bin/env python3
"""Browser test of the rustmon dashboard in headless Chromium, driven over WebDriver
(chromedriver) with the Python standard library only.

    python3 browser.py --base http://127.0.0.1:7070 --out docs/screenshots
    python3 browser.py --empty --base http://127.0.0.1:7070 --otlp http://127.0.0.1:4318 --out …

Expects a running `rustmon demo` (see ci.sh): the collector with the dashboard and the sample
system (services `demo-shop` and `demo-inventory`) sending live traffic, its agents polling the
central configuration. Checks: every page loads with no console errors and no uncaught
exceptions, the services page lists both services, charts show values on hover, the trace page
renders a waterfall with database children, N+1 marks and collapse/expand, a trace spans both
services, the settings page refuses invalid JSON and saves a change that the demo's agent
applies (it reports the version, and the spans it records next carry the request headers); a
screenshot of each page is written. With --empty (a `rustmon serve` on an empty data dir): each
page explains what to do, and markup in a span name sent to --otlp is shown as text.
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
import urllib.parse
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
        """The whole page (up to 3200 px high) at `width`."""
        self.size(width, 400)  # small, so that scrollHeight is the content's height
        h, chrome = self.js("return [Math.ceil(document.documentElement.scrollHeight), window.outerHeight - window.innerHeight]")
        self.size(width, min(int(h), 3200) + int(chrome))
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

SHOP, INVENTORY = "demo-shop", "demo-inventory"
ORDER = "GET /orders/{id}"  # the N+1 route: a statement for the order, then one per line
LOOKUP = "SELECT name FROM products WHERE id = ?"
PRODUCT = "GET /products/{id}"  # calls the inventory: a trace across both services


def until(what, f, timeout=90):
    """Polls f until it returns something truthy, for at most timeout seconds."""
    end = time.time() + timeout
    while True:
        v = f()
        if v:
            return v
        if time.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def api(base, path, **params):
    st, v = http("GET", f"{base}/api/v1{path}?{urllib.parse.urlencode(params)}")
    assert st == 200, f"GET {path}: {st} {v}"
    return v


def a_trace(base, name, ok):
    """The newest complete trace of demo-shop's `name` for which ok(trace) holds."""
    def find():
        for t in api(base, "/traces", service=SHOP, name=name, kind="server", limit=20)["traces"]:
            st, full = http("GET", f"{base}/api/v1/traces/{t['trace_id']}")
            if st == 200 and ok(full):
                return full
    return until(f"a trace of {name}", find)


def lookups_under_root(trace):
    """How many times the N+1 statement ran right under the request."""
    root = next((s for s in trace["spans"] if s["parent_span_id"] is None), None)
    return root and sum(1 for s in trace["spans"] if s["name"] == LOOKUP and s["parent_span_id"] == root["span_id"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="dashboard origin, e.g. http://127.0.0.1:7070")
    ap.add_argument("--otlp", help="OTLP/HTTP receiver of the collector (with --empty)")
    ap.add_argument("--out", default="docs/screenshots")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--chromedriver", default=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    ap.add_argument("--empty", action="store_true", help="the collector has no data: check the empty states")
    ap.add_argument("--range", choices=["15m", "1h", "6h", "24h"], help="time range of the pages (default: the dashboard's, 1h)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    base = a.base.rstrip("/")
    if a.empty:
        return empty_states(a, base)

    # What the pages need from the demo's live traffic (it arrives within seconds).
    order = a_trace(base, ORDER, lambda t: (lookups_under_root(t) or 0) >= 5)
    product = a_trace(base, PRODUCT, lambda t: sorted(t["services"]) == [INVENTORY, SHOP])
    until("a failed GET /recommendations", lambda: api(base, "/traces", service=SHOP, name="GET /recommendations", status="error", limit=1)["traces"])
    until("runtime metrics of demo-shop (every 2 s)", lambda: any(len(s["points"]) >= 2 for s in api(base, f"/services/{SHOP}/metrics", name="process.memory.usage")["series"]))
    until("the demo-shop → demo-inventory edge", lambda: any(e["caller"] == SHOP and e["callee"] == INVENTORY for e in api(base, "/dependencies")["edges"]))

    b = Browser(a.chromium, a.chromedriver)
    failures = []
    try:
        pages = [
            ("services", "/ui/"),
            ("service", f"/ui/services/{SHOP}"),
            ("operation", f"/ui/services/{SHOP}/operation?" + urllib.parse.urlencode({"kind": "server", "name": ORDER})),
            ("trace", f"/ui/traces/{order['trace_id']}"),
            ("trace-services", f"/ui/traces/{product['trace_id']}"),
            ("database", f"/ui/database/{SHOP}"),
            ("external", f"/ui/external/{SHOP}"),
            ("runtime", f"/ui/runtime/{SHOP}"),
            ("errors", "/ui/errors"),
            ("map", "/ui/map"),
            ("settings", f"/ui/settings/{SHOP}"),
        ]
        b.logs()  # drop anything from startup
        ranged = lambda path: path + ("&" if "?" in path else "?") + f"range={a.range}" if a.range else path
        for name, path in pages:
            b.go(base + ranged(path))
            b.wait(LOADED, f"{name} to load")
            err = b.js("return document.querySelector('#content .error-box') && document.querySelector('#content .error-box').innerText")
            if err:
                failures.append(f"{name}: {err}")
            text = b.js("return document.querySelector('#content').innerText")

            if name == "services":
                names = b.js("return Array.from(document.querySelectorAll('table[data-table=services] tbody tr td:first-child a')).map(a => a.textContent)")
                for s in (SHOP, INVENTORY):
                    if s not in names:
                        failures.append(f"services page does not list {s}: {names}")
                if b.js("return document.querySelectorAll('svg.spark').length") < 2:
                    failures.append("services page: sparklines missing")
            if name in ("service", "operation", "runtime"):
                # hover a chart: the tooltip shows a time and values
                tip = b.js("""
                  const el = document.querySelector('[data-chart]'); const r = el.querySelector('rect.hover').getBoundingClientRect();
                  const ev = new PointerEvent('pointermove', {bubbles: true, clientX: r.left + r.width * 0.99, clientY: r.top + r.height / 2});
                  el.querySelector('rect.hover').dispatchEvent(ev);
                  const t = el.querySelector('.tip'); return t && !t.hidden ? t.innerText : null;""")
                if not tip or ":" not in tip:
                    failures.append(f"{name}: no hover values on the chart ({tip!r})")
            if name == "service":
                ops = b.js("return Array.from(document.querySelectorAll('table[data-table=ops] tbody tr td:first-child')).map(td => td.innerText)")
                for o in ("GET /products", PRODUCT, ORDER, "POST /checkout", "GET /recommendations"):
                    if o not in ops:
                        failures.append(f"service page: operation {o} missing: {ops}")
                # sort by p95 (a click sorts descending)
                b.js("document.querySelector('table[data-table=ops] th[data-key=p95_ms]').click()")
                b.wait("return document.querySelector('table[data-table=ops] th[data-key=p95_ms].desc')", "sort by p95")
            if name == "operation":
                if "Latency distribution" not in text or not b.js("return document.querySelectorAll('#content svg rect').length"):
                    failures.append(f"operation: no latency histogram: {text[:300]}")
            if name == "trace":
                rows = b.js("return document.querySelectorAll('.wf-row').length")
                db = b.js(f"return Array.from(document.querySelectorAll('.wf-row .label')).filter(e => e.textContent.includes({json.dumps(LOOKUP)})).length")
                np = b.js("return Array.from(document.querySelectorAll('.wf-row .badge.np')).map(e => e.textContent)")
                want = lookups_under_root(order)
                if rows != len(order["spans"]) or db != want:
                    failures.append(f"trace: waterfall has {rows} rows for {len(order['spans'])} spans, {db} of {want} database children")
                if len(np) != want or any(f"×{want}" not in t for t in np):
                    failures.append(f"trace: N+1 marks {np}, expected {want} × 'N+1 ×{want}'")
                # collapse the request, then expand again
                b.js(f"""const r = Array.from(document.querySelectorAll('.wf-row')).find(r => r.innerText.includes({json.dumps(ORDER)}));
                        r.querySelector('[data-tog]').click();""")
                after = b.js("return document.querySelectorAll('.wf-row').length")
                if after != 1:
                    failures.append(f"trace: collapsing the request left {after} rows")
                b.js("document.querySelector('#expand').click()")
                if b.js("return document.querySelectorAll('.wf-row').length") != rows:
                    failures.append("trace: expand all did not restore the rows")
                # open the details of the first N+1 span
                b.js("Array.from(document.querySelectorAll('.wf-row')).find(r => r.querySelector('.badge.np')).click()")
                b.wait("return document.querySelector('.wf-detail')", "span details")
                txt = b.js("return document.querySelector('.wf-detail').innerText")
                if "db.query.text" not in txt or "sqlite" not in txt or "N+1" not in txt:
                    failures.append(f"trace: details lack the statement or the N+1 note: {txt[:300]}")
            if name == "trace-services":
                svcs = b.js("return Array.from(new Set(Array.from(document.querySelectorAll('.wf-row .label .muted')).map(e => e.textContent)))")
                if sorted(svcs) != [INVENTORY, SHOP]:
                    failures.append(f"trace-services: waterfall shows services {svcs}")
                for n in (PRODUCT, "GET inventory", "GET /stock/{id}", "SELECT quantity FROM stock WHERE product_id = ?"):
                    if n not in text:
                        failures.append(f"trace-services: {n} missing")
            if name == "database":
                stmts = b.js("return document.querySelector('table[data-table=queries]').innerText")
                for q in (LOOKUP, "SELECT product_id, quantity FROM order_lines WHERE order_id = ?", "INSERT INTO orders (customer, created_at)"):
                    if q not in stmts:
                        failures.append(f"database: {q} missing")
                b.js(f"Array.from(document.querySelectorAll('[data-fp]')).find(a => a.textContent.includes({json.dumps(LOOKUP)})).click()")
                b.wait("return document.body.innerText.includes('Slowest executions') && !document.querySelector('#content .loading')", "statement drill-down")
            if name == "external":
                dests = b.js("return document.querySelector('table[data-table=dests]').innerText")
                cops = b.js("return document.querySelector('table[data-table=cops]').innerText")
                if INVENTORY not in dests:
                    failures.append(f"external: {INVENTORY} not a destination: {dests[:300]}")
                for o in ("GET inventory", "POST payments"):
                    if o not in cops:
                        failures.append(f"external: outgoing operation {o} missing: {cops[:300]}")
            if name == "runtime":
                charts = b.js("return document.querySelectorAll('#content [data-chart] path').length")
                for t in ("CPU", "Memory (RSS)", "Threads"):
                    if t not in text:
                        failures.append(f"runtime: no {t} chart")
                if not charts:
                    failures.append("runtime: charts have no lines")
            if name == "errors":
                txt = b.js("return document.querySelector('table[data-table=errors]').innerText")
                if "recommendations" not in txt:
                    failures.append(f"errors: the recommendations failures are not listed: {txt[:300]}")
            if name == "map":
                edge = f"{SHOP} → {INVENTORY}"
                titles = b.js("return Array.from(document.querySelectorAll('.map path.edge title')).map(t => t.textContent)")
                if not any(t.startswith(edge + ":") for t in titles):
                    failures.append(f"map: no edge {edge}: {titles}")
            if name == "settings":
                b.wait("return document.querySelector('#agents table') || document.querySelector('#agents .muted')", "agents")
                b.js("const t = document.querySelector('#cfg'); t.value = '{\"http_server\": {\"request_headers\": '; t.dispatchEvent(new Event('input'))")
                if not b.js("return document.querySelector('#save').disabled && document.querySelector('#check').innerText.includes('not valid JSON')"):
                    failures.append("settings: invalid JSON not refused")
                b.js("const t = document.querySelector('#cfg'); t.value = '{\"http_server\": {\"request_headers\": \"yes\"}}'; t.dispatchEvent(new Event('input'))")
                if "request_headers" not in b.js("return document.querySelector('#check').innerText") or not b.js("return document.querySelector('#save').disabled"):
                    failures.append("settings: a wrong type not flagged")
                change = {"http_server": {"request_headers": True}}
                before = api(base, f"/config/{SHOP}")
                saved_at = time.time_ns()
                b.js("const t = document.querySelector('#cfg'); t.value = JSON.stringify(arguments[0], null, 2); t.dispatchEvent(new Event('input'))", change)
                b.js("document.querySelector('#save').click()")
                b.wait("return document.querySelector('#saved').innerText.startsWith('Saved')", "save")
                after = api(base, f"/config/{SHOP}")
                version = after["version"]
                # (saving the configuration it already has, on a second run, keeps the version)
                if after["config"] != change or version != before["version"] + (before["config"] != change):
                    failures.append(f"settings: not saved: {before} -> {after}")
                # the demo's agent polls every 2 s, applies the change and reports the version
                b.wait(f"return Array.from(document.querySelectorAll('#agents tbody tr')).some(tr => tr.cells[1].innerText.trim() === '{version}' && tr.innerText.includes('up to date'))",
                       "the agent to report the new version", timeout=30)
                # ... and what it records from then on shows it: request headers on server spans
                def with_headers():
                    for t in api(base, "/traces", service=SHOP, kind="server", limit=50)["traces"]:
                        if t["start_unix_nano"] > saved_at and "http.request.header.host" in t["attributes"]:
                            return t
                try:
                    until("demo-shop spans with http.request.header.host", with_headers, timeout=30)
                except AssertionError as e:
                    failures.append(f"settings: the agent did not apply the change: {e}")
            b.screenshot(os.path.join(a.out, f"{name}.png"))
            for e in b.logs():
                if e.get("level") in ("SEVERE", "WARNING") and "favicon" not in e.get("message", ""):
                    failures.append(f"{name}: console {e['level']}: {e['message']}")
        # narrow screen
        b.size(390, 800)
        b.go(base + ranged(f"/ui/services/{SHOP}"))
        b.wait(LOADED, "service page on a narrow screen")
        overflow = b.js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if overflow > 2:
            failures.append(f"narrow screen: page is {overflow}px wider than the window")
        b.screenshot(os.path.join(a.out, "service-narrow.png"), width=390)
        for e in b.logs():
            if e.get("level") in ("SEVERE", "WARNING") and "favicon" not in e.get("message", ""):
                failures.append(f"narrow: console {e['level']}: {e['message']}")
    finally:
        b.close()
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print(f"browser test: {len(pages) + 1} pages of the demo OK, screenshots in {a.out}")


def hostile_span(otlp):
    """Sends one span whose route name carries markup, as an agent could (OTLP/JSON)."""
    now = time.time_ns()
    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "hostile"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
            "name": "GET /<img src=x onerror=alert(1)>", "kind": 2,
            "startTimeUnixNano": str(now - 5_000_000), "endTimeUnixNano": str(now),
            "status": {}}]}]}]}
    st, v = http("POST", otlp.rstrip("/") + "/v1/traces", body)
    assert st == 200, f"OTLP export: {st} {v}"


def empty_states(a, base):
    """With no data, each page explains what to do instead of showing empty tables; then one
    span with markup in its name is shown as text, never as an element."""
    b = Browser(a.chromium, a.chromedriver)
    failures = []
    try:
        b.logs()
        for path, want in [("/ui/", "4318"), ("/ui/map", "4318"), ("/ui/errors", "No errors"),
                           (f"/ui/services/{SHOP}", "4318"), ("/ui/database", "No services yet"),
                           (f"/ui/database/{SHOP}", "No database statements"),
                           (f"/ui/runtime/{SHOP}", "runtime plugin"), (f"/ui/settings/{SHOP}", "No agent has reported"),
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
        if a.otlp:
            hostile_span(a.otlp)
            until("the hostile span", lambda: api(base, "/services/hostile/operations")["operations"], timeout=30)
            b.go(base + "/ui/services/hostile")
            b.wait(LOADED, "the hostile service")
            if b.js("return document.querySelectorAll('#content img').length") != 0:
                failures.append("hostile: markup from a span name became an element")
            txt = b.js("return document.querySelector('#content').innerText")
            if "<img src=x onerror=alert(1)>" not in txt:
                failures.append(f"hostile: the route name with markup is not shown as text: {txt[:300]}")
            for e in b.logs():
                if e.get("level") in ("SEVERE", "WARNING") and "favicon" not in e.get("message", ""):
                    failures.append(f"hostile: console {e['level']}: {e['message']}")
    finally:
        b.close()
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("browser test: empty states OK" + (", markup in span names shown as text" if a.otlp else ""))


if __name__ == "__main__":
    main()
