// rustmon dashboard: reads the JSON API (/api/v1/...) and draws tables and SVG charts.
// No framework, no build step. Everything inserted into the page goes through `html`,
// which escapes interpolated values (span names and attributes come from untrusted agents).
'use strict';
(() => {
  // ---------- escaping and templates ----------
  const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  const esc = (s) => String(s == null ? '' : s).replace(/[&<>"']/g, (c) => ESC[c]);
  class Raw { constructor(s) { this.s = s; } toString() { return this.s; } }
  const raw = (s) => new Raw(s);
  const part = (v) => v instanceof Raw ? v.s : Array.isArray(v) ? v.map(part).join('')
    : v == null || v === false ? '' : esc(v);
  /** Tagged template: interpolations are escaped unless wrapped in `raw` or built by `html`. */
  const html = (strs, ...vals) => raw(strs.reduce((o, s, i) => o + part(vals[i - 1]) + s));
  const $ = (sel, el = document) => el.querySelector(sel);
  const $$ = (sel, el = document) => Array.from(el.querySelectorAll(sel));
  const put = (el, r) => { el.innerHTML = part(r); };

  // ---------- formatting ----------
  const num = (n, d = 0) => n == null || !isFinite(n) ? '–'
    : Number(n).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: 0 });
  const fmtMs = (v) => v == null ? '–' : v === 0 ? '0' : v < 1 ? `${v.toFixed(2)} ms` : v < 100 ? `${v.toFixed(1)} ms`
    : v < 1000 ? `${v.toFixed(0)} ms` : v < 60000 ? `${(v / 1000).toFixed(2)} s` : `${(v / 60000).toFixed(1)} min`;
  const fmtRate = (v) => v == null ? '–' : v === 0 ? '0' : v >= 1 ? `${num(v, v < 10 ? 2 : 1)}/s` : `${num(v * 60, 1)}/min`;
  const fmtPct = (v) => v == null ? '–' : v === 0 ? '0 %' : v < 0.001 ? '<0.1 %' : `${(v * 100).toFixed(v < 0.1 ? 2 : 1)} %`;
  const fmtBytes = (v) => {
    if (v == null) return '–';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; let i = 0; let x = Math.abs(v);
    while (x >= 1024 && i < u.length - 1) { x /= 1024; i++; }
    return `${v < 0 ? '-' : ''}${x.toFixed(x < 10 && i ? 1 : 0)} ${u[i]}`;
  };
  const fmtTime = (t) => {
    const d = new Date(t); const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  };
  const fmtAgo = (t) => {
    const s = (Date.now() - t) / 1000;
    return s < 60 ? `${Math.max(0, Math.round(s))} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago`
      : s < 86400 ? `${(s / 3600).toFixed(1)} h ago` : fmtTime(t);
  };
  const short = (id) => String(id || '').slice(0, 8);
  /** A stable hue per name: FNV-1a, spread by the golden angle so similar names differ. */
  const hue = (s) => { let h = 2166136261; for (const c of String(s)) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0; return Math.round((h % 1000) * 137.508) % 360; };
  const color = (s) => `hsl(${hue(s)} 60% 48%)`;
  const PAL = ['#1f6feb', '#bf3989', '#1a7f37', '#bc4c00', '#8250df', '#0a7f8f', '#9a6700', '#cf222e'];

  // ---------- URLs, time range, API ----------
  const body = document.body;
  const PAGE = body.dataset.page;
  const SERVICE = body.dataset.service || '';
  const enc = encodeURIComponent;
  const query = new URLSearchParams(location.search);
  const RANGES = { '15m': 15 * 60e3, '1h': 3600e3, '6h': 6 * 3600e3, '24h': 24 * 3600e3 };
  const state = {
    range: query.get('range') in RANGES ? query.get('range') : (query.get('from') ? 'custom' : '1h'),
    from: query.get('from') || '', to: query.get('to') || '',
    refresh: Number(localStorage.getItem('rustmon.refresh') || 30),
    timer: null, busy: false,
  };
  /** The current time window as [from, to] in ms and as API parameters. */
  function windowNow() {
    let t1 = Date.now(); let t0 = t1 - (RANGES[state.range] || 3600e3);
    if (state.range === 'custom') {
      const a = Date.parse(state.from); const b = state.to ? Date.parse(state.to) : Date.now();
      if (isFinite(a) && isFinite(b) && a < b) { t0 = a; t1 = b; }
    }
    const iso = (t) => new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
    return { t0, t1, from: iso(t0), to: iso(t1) };
  }
  const keepRange = () => state.range === 'custom' ? { from: state.from, to: state.to }
    : state.range === '1h' ? {} : { range: state.range };
  const qs = (o) => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(o)) if (v != null && v !== '') p.set(k, v);
    const s = p.toString(); return s ? `?${s}` : '';
  };
  const link = (path, params = {}) => `/ui${path}${qs({ ...params, ...keepRange() })}`;
  const U = {
    services: () => link('/'),
    service: (s) => link(`/services/${enc(s)}`),
    op: (s, kind, name) => link(`/services/${enc(s)}/operation`, { kind, name }),
    trace: (id, span) => link(`/traces/${enc(id)}`, { span }),
    db: (s, q) => link(`/database/${enc(s)}`, { q }),
    ext: (s) => link(`/external/${enc(s)}`),
    runtime: (s) => link(`/runtime/${enc(s)}`),
    errors: (s) => link('/errors', { service: s }),
    map: () => link('/map'),
    settings: (s) => link(s ? `/settings/${enc(s)}` : '/settings'),
  };
  class ApiError extends Error { constructor(status, msg) { super(msg); this.status = status; } }
  async function api(path, params = {}, opts = {}) {
    const r = await fetch(`/api/v1${path}${qs(params)}`, { headers: { accept: 'application/json' }, ...opts });
    let b = null; try { b = await r.json(); } catch (_) { /* not JSON */ }
    if (!r.ok) throw new ApiError(r.status, (b && b.error) || `${r.status} ${r.statusText}`);
    return { body: b, headers: r.headers };
  }
  const get = async (path, params) => (await api(path, params)).body;
  const range = () => { const w = windowNow(); return { from: w.from, to: w.to }; };

  // ---------- empty states ----------
  const otlpHint = () => {
    const host = location.hostname || '127.0.0.1';
    return html`<p>Point an agent at this collector's OTLP endpoint, <code>http://${host}:4318</code>
      (HTTP) or <code>http://${host}:4317</code> (gRPC), for example:</p>
      <pre>OTEL_SERVICE_NAME=checkout OTEL_EXPORTER_OTLP_ENDPOINT=http://${host}:4318 cargo run</pre>
      <p>with <code>let _guard = rustmon::init("checkout")?;</code> in <code>main</code>, or run
      <code>rustmon demo</code> to see a sample service. Any OpenTelemetry SDK works too.</p>`;
  };
  const empty = (title, more) => html`<div class="empty"><h2>${title}</h2>${more || ''}</div>`;
  const errorBox = (e) => html`<div class="error-box">Could not load data: ${e.message || e}</div>`;

  // ---------- charts ----------
  const charts = new Map(); let chartSeq = 0;
  /** A placeholder for a chart; it is drawn once the HTML is in the page. */
  function chart(spec) { const id = `c${++chartSeq}`; charts.set(id, spec); return html`<div class="chart" data-chart="${id}"></div>`; }
  function drawCharts(root = document) {
    for (const el of $$('[data-chart]', root)) {
      const spec = charts.get(el.dataset.chart);
      if (spec) (spec.type === 'bars' ? drawBars : drawLine)(el, spec);
    }
  }
  let resizeT = null;
  window.addEventListener('resize', () => { clearTimeout(resizeT); resizeT = setTimeout(() => drawCharts(), 150); });
  const niceMax = (v) => {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v)); const f = v / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * p;
  };
  const timeTick = (t, span) => {
    const d = new Date(t); const p = (n) => String(n).padStart(2, '0');
    return span > 2 * 86400e3 ? `${d.getMonth() + 1}/${d.getDate()}` : `${p(d.getHours())}:${p(d.getMinutes())}`;
  };
  function tipAt(el, x, y, content) {
    let tip = $('.tip', el);
    if (!tip) { tip = document.createElement('div'); tip.className = 'tip'; el.appendChild(tip); }
    put(tip, content); tip.hidden = false;
    const w = tip.offsetWidth; const W = el.clientWidth;
    tip.style.left = `${Math.max(0, Math.min(W - w, x + 12))}px`;
    tip.style.top = `${Math.max(0, y - 10)}px`;
  }
  const hideTip = (el) => { const t = $('.tip', el); if (t) t.hidden = true; };
  /**
   * Line or area chart over time. spec: { times: [ms], series: [{name, color, values}],
   * domain: [t0, t1], fmt, area, height, legend }
   */
  function drawLine(el, spec) {
    const W = Math.max(240, el.clientWidth); const H = spec.height || 150;
    const m = { l: 52, r: 8, t: 8, b: 20 }; const iw = W - m.l - m.r; const ih = H - m.t - m.b;
    const [t0, t1] = spec.domain; const X = (t) => m.l + ((t - t0) / (t1 - t0 || 1)) * iw;
    let max = 0;
    for (const s of spec.series) for (const v of s.values) if (v != null && v > max) max = v;
    max = niceMax(max * 1.05); const Y = (v) => m.t + ih - (v / max) * ih;
    let g = '';
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4; const y = Y(v).toFixed(1);
      g += `<line class="grid-line" x1="${m.l}" x2="${W - m.r}" y1="${y}" y2="${y}"/>`
        + `<text x="${m.l - 5}" y="${+y + 3}" text-anchor="end">${esc(spec.fmt(v))}</text>`;
    }
    const nt = Math.max(2, Math.floor(iw / 90));
    for (let i = 0; i <= nt; i++) {
      const t = t0 + ((t1 - t0) * i) / nt;
      g += `<text x="${X(t).toFixed(1)}" y="${H - 5}" text-anchor="${i === 0 ? 'start' : i === nt ? 'end' : 'middle'}">${esc(timeTick(t, t1 - t0))}</text>`;
    }
    g += `<line class="axis" x1="${m.l}" x2="${W - m.r}" y1="${m.t + ih}" y2="${m.t + ih}"/>`;
    for (const s of spec.series) {
      let d = ''; let pen = false; let area = ''; let run = [];
      const flush = () => {
        if (spec.area && run.length) area += `M${run[0][0]},${Y(0)}L${run.map((p) => p.join(',')).join('L')}L${run[run.length - 1][0]},${Y(0)}Z`;
        run = [];
      };
      s.values.forEach((v, i) => {
        if (v == null) { pen = false; flush(); return; }
        const p = [X(spec.times[i]).toFixed(1), Y(v).toFixed(1)];
        d += `${pen ? 'L' : 'M'}${p[0]},${p[1]}`; pen = true; run.push(p);
      });
      flush();
      if (area) g += `<path d="${area}" fill="${s.color}" fill-opacity="0.14" stroke="none"/>`;
      if (d) g += `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.6" stroke-linejoin="round"/>`;
      // single points would be invisible as paths
      s.values.forEach((v, i) => {
        const prev = s.values[i - 1]; const next = s.values[i + 1];
        if (v != null && prev == null && next == null) g += `<circle cx="${X(spec.times[i]).toFixed(1)}" cy="${Y(v).toFixed(1)}" r="2" fill="${s.color}"/>`;
      });
    }
    g += `<line class="cross" x1="0" x2="0" y1="${m.t}" y2="${m.t + ih}" visibility="hidden"/>`;
    g += `<rect class="hover" x="${m.l}" y="${m.t}" width="${iw}" height="${ih}" fill="transparent"/>`;
    const legend = spec.series.length > 1 || spec.legend
      ? `<div class="legend">${spec.series.map((s) => `<span><span class="dot" style="background:${s.color}"></span>${esc(s.name)}</span>`).join('')}</div>` : '';
    el.innerHTML = `<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(spec.label || 'chart')}">${g}</svg>${legend}`;
    const svg = $('svg', el); const cross = $('.cross', svg);
    const move = (ev) => {
      const r = svg.getBoundingClientRect(); const x = ev.clientX - r.left;
      const t = t0 + ((x - m.l) / iw) * (t1 - t0);
      let best = -1; let bd = Infinity;
      spec.times.forEach((tt, i) => { const dd = Math.abs(tt - t); if (dd < bd) { bd = dd; best = i; } });
      if (best < 0) return;
      const cx = X(spec.times[best]).toFixed(1);
      cross.setAttribute('x1', cx); cross.setAttribute('x2', cx); cross.setAttribute('visibility', 'visible');
      tipAt(el, +cx, ev.clientY - r.top, html`<b>${fmtTime(spec.times[best])}</b>${spec.series.map((s) =>
        html`<br><span class="dot" style="background:${raw(s.color)}"></span>${s.name}: ${s.values[best] == null ? '–' : spec.fmt(s.values[best])}`)}`);
    };
    const rect = $('.hover', svg);
    rect.addEventListener('pointermove', move);
    rect.addEventListener('pointerleave', () => { cross.setAttribute('visibility', 'hidden'); hideTip(el); });
  }
  /** Vertical bars: spec { bars: [{label, value, tip}], fmt, height, color } */
  function drawBars(el, spec) {
    const W = Math.max(240, el.clientWidth); const H = spec.height || 150;
    const m = { l: 44, r: 8, t: 8, b: 22 }; const iw = W - m.l - m.r; const ih = H - m.t - m.b;
    const n = spec.bars.length || 1; const bw = iw / n;
    const max = niceMax(Math.max(0, ...spec.bars.map((b) => b.value)));
    const Y = (v) => m.t + ih - (v / max) * ih;
    let g = '';
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4; const y = Y(v).toFixed(1);
      g += `<line class="grid-line" x1="${m.l}" x2="${W - m.r}" y1="${y}" y2="${y}"/><text x="${m.l - 5}" y="${+y + 3}" text-anchor="end">${esc(num(v))}</text>`;
    }
    const every = Math.ceil(n / Math.max(1, Math.floor(iw / 60)));
    spec.bars.forEach((b, i) => {
      const x = m.l + i * bw; const y = Y(b.value);
      g += `<rect x="${(x + 1).toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(1, bw - 2).toFixed(1)}" height="${(m.t + ih - y).toFixed(1)}" fill="${spec.color || '#1f6feb'}" data-i="${i}"/>`;
      if (i % every === 0) g += `<text x="${(x + bw / 2).toFixed(1)}" y="${H - 6}" text-anchor="middle">${esc(b.label)}</text>`;
    });
    g += `<rect class="hover" x="${m.l}" y="${m.t}" width="${iw}" height="${ih}" fill="transparent"/>`;
    el.innerHTML = `<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(spec.label || 'bars')}">${g}</svg>`;
    const svg = $('svg', el);
    const hover = $('.hover', svg);
    hover.addEventListener('pointermove', (ev) => {
      const r = svg.getBoundingClientRect(); const i = Math.floor((ev.clientX - r.left - m.l) / bw);
      const b = spec.bars[i]; if (!b) return;
      tipAt(el, ev.clientX - r.left, ev.clientY - r.top, b.tip || html`${b.label}: ${num(b.value)}`);
    });
    hover.addEventListener('pointerleave', () => hideTip(el));
  }
  /** A tiny inline line, for tables. */
  function sparkline(values, c = '#1f6feb') {
    const W = 110; const H = 26; const vs = values.map((v) => v || 0);
    const max = Math.max(...vs, 0) || 1; const n = Math.max(1, vs.length - 1);
    const pts = vs.map((v, i) => `${((i / n) * (W - 2) + 1).toFixed(1)},${(H - 2 - (v / max) * (H - 4)).toFixed(1)}`).join(' ');
    return raw(`<svg class="spark" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img"><title>${esc(`max ${fmtRate(max)}, last ${fmtRate(vs[vs.length - 1])}`)}</title>`
      + `<polyline points="${pts}" fill="none" stroke="${c}" stroke-width="1.5"/></svg>`);
  }
  const barCell = (f, c, label) => html`<div class="bp"><div class="bar" title="${fmtPct(f)}"><span style="width:${raw((Math.max(0, Math.min(1, f || 0)) * 100).toFixed(1))}%;${c ? raw(`background:${c}`) : ''}"></span></div><span class="muted">${label == null ? fmtPct(f) : label}</span></div>`;
  /** Turns a timeseries response into chart specs. */
  function seriesCharts(ts, w) {
    const times = ts.points.map((p) => Date.parse(p.time));
    const domain = [w.t0, w.t1];
    return {
      throughput: chart({ times, domain, area: true, fmt: fmtRate, label: 'throughput', series: [{ name: 'requests/s', color: '#1f6feb', values: ts.points.map((p) => p.throughput_per_s) }] }),
      latency: chart({ times, domain, fmt: fmtMs, label: 'latency', series: [
        { name: 'p50', color: '#1a7f37', values: ts.points.map((p) => p.p50_ms) },
        { name: 'p95', color: '#bf8700', values: ts.points.map((p) => p.p95_ms) },
        { name: 'p99', color: '#cf222e', values: ts.points.map((p) => p.p99_ms) }] }),
      errors: chart({ times, domain, area: true, fmt: fmtPct, label: 'error rate', series: [{ name: 'error rate', color: '#cf222e', values: ts.points.map((p) => (p.count ? p.error_rate : null)) }] }),
    };
  }

  // ---------- sortable tables ----------
  const sorts = {};
  /**
   * cols: [{key, label, n (numeric), get(row) -> sort value, cell(row) -> html}]
   * Sort state survives refreshes (kept per table id).
   */
  function table(id, cols, rows, def, extra) {
    const s = sorts[id] || (sorts[id] = def || { key: cols[0].key, dir: 1 });
    const col = cols.find((c) => c.key === s.key) || cols[0];
    const val = col.get || ((r) => r[col.key]);
    const sorted = rows.slice().sort((a, b) => {
      const x = val(a); const y = val(b);
      if (x == null && y == null) return 0; if (x == null) return 1; if (y == null) return -1;
      return (typeof x === 'string' ? x.localeCompare(y) : x - y) * s.dir;
    });
    return html`<div class="scroll"><table data-table="${id}"><thead><tr>${cols.map((c) => html`<th class="sort${c.n ? ' n' : ''}${c.key === s.key ? (s.dir > 0 ? ' asc' : ' desc') : ''}${c.narrow ? ' hide-narrow' : ''}" data-key="${c.key}" title="sort by ${c.label}">${c.label}</th>`)}</tr></thead>
      <tbody>${sorted.map((r) => { const x = extra && extra(r); return html`<tr>${cols.map((c) => html`<td class="${c.n ? 'n' : c.cls || ''}${c.narrow ? ' hide-narrow' : ''}">${c.cell ? c.cell(r) : r[c.key]}</td>`)}</tr>${x ? html`<tr class="extra"><td colspan="${cols.length}">${x}</td></tr>` : ''}`; })}</tbody></table></div>`;
  }
  document.addEventListener('click', (ev) => {
    const th = ev.target.closest('th.sort'); if (!th) return;
    const id = th.closest('table').dataset.table; const k = th.dataset.key; const s = sorts[id];
    sorts[id] = s && s.key === k ? { key: k, dir: -s.dir } : { key: k, dir: ['name', 'service', 'fingerprint', 'kind', 'destination', 'type', 'message', 'instance', 'caller', 'callee'].includes(k) ? 1 : -1 };
    // the settings page keeps the editor as it is: only its agents table is redrawn
    if (PAGE === 'settings') PAGES.settings.agents(); else refresh();
  });

  // ---------- header controls ----------
  function controls() {
    const el = $('#controls');
    const opts = ['15m', '1h', '6h', '24h', 'custom'];
    const labels = { '15m': 'Last 15 min', '1h': 'Last hour', '6h': 'Last 6 h', '24h': 'Last 24 h', custom: 'Custom…' };
    const local = (iso) => { const t = Date.parse(iso); if (!isFinite(t)) return ''; const d = new Date(t - new Date().getTimezoneOffset() * 60e3); return d.toISOString().slice(0, 16); };
    put(el, html`<select id="range" aria-label="time range">${opts.map((o) => html`<option value="${o}"${raw(o === state.range ? ' selected' : '')}>${labels[o]}</option>`)}</select>
      <span id="custom"${raw(state.range === 'custom' ? '' : ' hidden')}><input type="datetime-local" id="from" value="${local(state.from)}" aria-label="from"> – <input type="datetime-local" id="to" value="${local(state.to)}" aria-label="to"> <button id="apply">Apply</button></span>
      <select id="refresh" aria-label="auto-refresh">${[0, 10, 30, 60].map((s) => html`<option value="${s}"${raw(s === state.refresh ? ' selected' : '')}>${s ? `Refresh ${s}s` : 'Refresh off'}</option>`)}</select>
      <button id="reload" title="refresh now">↻</button><span class="updated" id="updated"></span>`);
    const setUrl = () => {
      const p = new URLSearchParams(location.search);
      for (const k of ['range', 'from', 'to']) p.delete(k);
      for (const [k, v] of Object.entries(keepRange())) if (v) p.set(k, v);
      const s = p.toString(); history.replaceState(null, '', location.pathname + (s ? `?${s}` : ''));
      for (const a of $$('a[data-nav]')) { const u = new URL(a.href); for (const k of ['range', 'from', 'to']) u.searchParams.delete(k); for (const [k, v] of Object.entries(keepRange())) if (v) u.searchParams.set(k, v); a.href = u.pathname + u.search; }
    };
    $('#range').addEventListener('change', (e) => {
      state.range = e.target.value;
      $('#custom').hidden = state.range !== 'custom';
      if (state.range === 'custom') {
        if (!state.from) { const w = windowNow(); $('#from').value = local(new Date(w.t1 - 3600e3).toISOString()); $('#to').value = local(new Date(w.t1).toISOString()); }
        return;
      }
      setUrl(); refresh();
    });
    $('#apply').addEventListener('click', () => {
      const a = Date.parse($('#from').value); const b = $('#to').value ? Date.parse($('#to').value) : Date.now();
      if (!isFinite(a) || !(a < b)) { $('#updated').textContent = 'from must be before to'; return; }
      state.from = new Date(a).toISOString(); state.to = $('#to').value ? new Date(b).toISOString() : '';
      setUrl(); refresh();
    });
    $('#refresh').addEventListener('change', (e) => { state.refresh = Number(e.target.value); localStorage.setItem('rustmon.refresh', String(state.refresh)); schedule(); });
    $('#reload').addEventListener('click', () => refresh());
    setUrl();
  }
  function schedule() {
    clearInterval(state.timer);
    const page = PAGES[PAGE];
    if (state.refresh > 0 && page && page.refresh !== false) state.timer = setInterval(() => { if (!document.hidden) refresh(); }, state.refresh * 1000);
  }
  async function refresh() {
    if (state.busy) return; state.busy = true;
    const page = PAGES[PAGE] || PAGES.notfound; const content = $('#content');
    try {
      charts.clear(); chartSeq = 0;
      const out = await page.load(windowNow());
      if (out !== undefined) put(content, out);
      drawCharts(content);
      if (page.after) page.after(content);
      $('#updated').textContent = `updated ${fmtTime(Date.now()).slice(11)}`;
    } catch (e) {
      console.warn('rustmon dashboard:', e);
      put(content, errorBox(e));
    } finally { state.busy = false; }
  }

  // ---------- shared page parts ----------
  const svcTabs = (s, cur) => {
    const tabs = [['service', 'Overview', U.service(s)], ['database', 'Database', U.db(s)], ['external', 'External calls', U.ext(s)],
      ['runtime', 'Runtime', U.runtime(s)], ['errors', 'Errors', U.errors(s)], ['settings', 'Settings', U.settings(s)]];
    put($('#subnav'), html`${tabs.map(([k, l, h]) => html`<a href="${h}" class="${k === cur ? 'active' : ''}">${l}</a>`)}`);
  };
  const setTitle = (t) => { put($('#title'), t); };
  async function servicePicker(kind, title, fn) {
    const d = await get('/services', range());
    if (!d.services.length) return empty('No services yet', otlpHint());
    return html`<div class="panel"><h2>${title}: choose a service</h2><ul>${d.services.map((s) => html`<li><a href="${fn(s.service)}">${s.service}</a> <span class="muted">${fmtRate(s.throughput_per_s)}</span></li>`)}</ul></div>`;
  }
  const statusBadge = (sp) => sp.status === 'error' ? html`<span class="badge err">error</span>` : '';
  function traceRows(id, list, opts = {}) {
    if (!list.length) return html`<p class="muted">${opts.none || 'None in this time range.'}</p>`;
    return table(id, [
      { key: 'start', label: 'Time', get: (t) => t.start_unix_nano, cell: (t) => html`<span title="${t.start}">${fmtTime(t.start_unix_nano / 1e6)}</span>` },
      { key: 'name', label: 'Span', cls: 'name', cell: (t) => html`<a href="${U.trace(t.trace_id, t.span_id)}">${t.name}</a>${statusBadge(t)}${opts.detail ? html`<div class="muted mono">${opts.detail(t)}</div>` : ''}` },
      { key: 'service', label: 'Service', narrow: true, cell: (t) => html`<span class="dot" style="background:${raw(color(t.service))}"></span>${t.service}` },
      { key: 'duration_ms', label: 'Duration', n: true, cell: (t) => fmtMs(t.duration_ms) },
      { key: 'trace_id', label: 'Trace', narrow: true, cell: (t) => html`<a class="mono" href="${U.trace(t.trace_id, t.span_id)}">${short(t.trace_id)}</a>` },
    ], list, opts.sort || { key: 'duration_ms', dir: -1 });
  }
  const attr = (sp, k) => (sp.attributes && sp.attributes[k] != null ? sp.attributes[k] : undefined);
  const isDb = (sp) => ['db.system.name', 'db.system', 'db.query.text', 'db.statement', 'db.query.summary'].some((k) => attr(sp, k) != null);

  // ---------- pages ----------
  const PAGES = {};

  PAGES.services = {
    async load(w) {
      const p = { from: w.from, to: w.to };
      const [d, health] = await Promise.all([get('/services', p), get('/health').catch(() => ({}))]);
      const list = d.services;
      if (!list.length) {
        return health.spans > 0
          ? empty('No requests in this time range', html`<p>The collector holds ${num(health.spans)} spans, but none started in the chosen window. Pick a longer range above.</p>`)
          : empty('No data yet', otlpHint());
      }
      const extra = await Promise.all(list.slice(0, 60).map((s) => Promise.all([
        get(`/services/${enc(s.service)}/timeseries`, p).catch(() => null),
        get(`/services/${enc(s.service)}/operations`, p).catch(() => null),
      ])));
      list.forEach((s, i) => {
        const [ts, ops] = extra[i] || [];
        s.spark = ts ? ts.points.map((x) => x.throughput_per_s) : [];
        let entry = 0; let all = 0;
        for (const o of (ops ? ops.operations : [])) { all += o.total_ms; if (o.kind === 'server' || o.kind === 'consumer') entry += o.total_ms; }
        s.total_ms = entry || all;
      });
      const total = list.reduce((a, s) => a + s.total_ms, 0) || 1;
      for (const s of list) s.impact = s.total_ms / total;
      const count = list.reduce((a, s) => a + s.count, 0); const errs = list.reduce((a, s) => a + s.errors, 0);
      return html`<div class="cards">
        <div class="card"><div class="k">Services</div><div class="v">${list.length}</div></div>
        <div class="card"><div class="k">Requests</div><div class="v">${num(count)}</div></div>
        <div class="card"><div class="k">Throughput</div><div class="v">${fmtRate(count / ((w.t1 - w.t0) / 1000))}</div></div>
        <div class="card"><div class="k">Error rate</div><div class="v ${errs ? 'err' : ''}">${fmtPct(count ? errs / count : 0)}</div></div></div>
        <div class="panel"><h2>Services <span class="muted">by impact: share of the time spent serving requests</span></h2>
        ${table('services', [
          { key: 'service', label: 'Service', cls: 'name', cell: (s) => html`<span class="dot" style="background:${raw(color(s.service))}"></span><a href="${U.service(s.service)}">${s.service}</a>` },
          { key: 'impact', label: 'Impact', n: true, cell: (s) => barCell(s.impact) },
          { key: 'throughput_per_s', label: 'Throughput', n: true, cell: (s) => fmtRate(s.throughput_per_s) },
          { key: 'error_rate', label: 'Errors', n: true, cell: (s) => html`<span class="${s.error_rate > 0.01 ? 'err' : ''}">${fmtPct(s.error_rate)}</span>` },
          { key: 'p50_ms', label: 'p50', n: true, cell: (s) => fmtMs(s.p50_ms) },
          { key: 'p95_ms', label: 'p95', n: true, cell: (s) => fmtMs(s.p95_ms) },
          { key: 'p99_ms', label: 'p99', n: true, cell: (s) => fmtMs(s.p99_ms) },
          { key: 'spark', label: 'Throughput over time', narrow: true, get: (s) => s.throughput_per_s, cell: (s) => sparkline(s.spark, color(s.service)) },
        ], list, { key: 'impact', dir: -1 })}</div>`;
    },
  };

  PAGES.service = {
    async load(w) {
      const s = SERVICE; svcTabs(s, 'service');
      const p = { from: w.from, to: w.to };
      const [ops, ts, q, svcs] = await Promise.all([
        get(`/services/${enc(s)}/operations`, p), get(`/services/${enc(s)}/timeseries`, p),
        get(`/services/${enc(s)}/queries`, p).catch(() => ({ queries: [] })), get('/services', p)]);
      const me = svcs.services.find((x) => x.service === s);
      if (!ops.operations.length) return empty(`No data for ${s} in this time range`, html`<p>Pick a longer range, or check that the agent of <b>${s}</b> is sending to this collector.</p>${otlpHint()}`);
      const c = seriesCharts(ts, w);
      const by = {}; for (const o of ops.operations) by[o.kind] = (by[o.kind] || 0) + o.total_ms;
      const dbMs = q.queries.reduce((a, x) => a + x.total_ms, 0);
      const entry = (by.server || 0) + (by.consumer || 0);
      const ext = Math.max(0, (by.client || 0) + (by.producer || 0) - dbMs);
      const parts = entry
        ? [['Database', dbMs, '#8250df'], ['External calls', ext, '#bc4c00'], ['Internal spans', by.internal || 0, '#0a7f8f'],
          ['Own code (rest)', Math.max(0, entry - dbMs - ext - (by.internal || 0)), '#1f6feb']]
        : Object.entries(by).map(([k, v], i) => [k, v, PAL[i % PAL.length]]);
      const whole = entry || parts.reduce((a, x) => a + x[1], 0) || 1;
      const kinds = ['all', ...new Set(ops.operations.map((o) => o.kind))];
      const kf = state.kind && kinds.includes(state.kind) ? state.kind : 'all';
      const rows = ops.operations.filter((o) => kf === 'all' || o.kind === kf);
      return html`<div class="cards">
        <div class="card"><div class="k">Throughput</div><div class="v">${fmtRate(me && me.throughput_per_s)}</div></div>
        <div class="card"><div class="k">Error rate</div><div class="v ${me && me.error_rate > 0.01 ? 'err' : ''}">${fmtPct(me && me.error_rate)}</div></div>
        <div class="card"><div class="k">p50</div><div class="v">${fmtMs(me && me.p50_ms)}</div></div>
        <div class="card"><div class="k">p95</div><div class="v">${fmtMs(me && me.p95_ms)}</div></div>
        <div class="card"><div class="k">p99</div><div class="v">${fmtMs(me && me.p99_ms)}</div></div></div>
        <div class="grid"><div class="panel"><h2>Throughput</h2>${c.throughput}</div>
        <div class="panel"><h2>Latency</h2>${c.latency}</div>
        <div class="panel"><h2>Error rate</h2>${c.errors}</div></div>
        <div class="panel"><h2>Where the time goes <span class="muted">${entry ? 'share of request time (server and consumer spans)' : 'total time by span kind'}</span></h2>
          <div class="stack">${parts.filter((x) => x[1] > 0).map(([k, v, col]) => html`<span style="width:${raw(((v / whole) * 100).toFixed(2))}%;background:${raw(col)}" title="${k}: ${fmtMs(v)} (${fmtPct(v / whole)})"></span>`)}</div>
          <div class="legend">${parts.map(([k, v, col]) => html`<span><span class="dot" style="background:${raw(col)}"></span>${k} <b>${fmtPct(v / whole)}</b> · ${fmtMs(v)}</span>`)}</div></div>
        <div class="panel"><h2>Operations</h2>
          <div class="chips" id="kinds">${kinds.map((k) => html`<button class="chip${raw(k === kf ? ' on' : '')}" data-kind="${k}">${k}${k === 'all' ? '' : html` (${ops.operations.filter((o) => o.kind === k).length})`}</button>`)}</div>
          ${table('ops', [
            { key: 'name', label: 'Operation', cls: 'name', cell: (o) => html`<a href="${U.op(s, o.kind, o.name)}">${o.name}</a>` },
            { key: 'kind', label: 'Kind', narrow: true, cell: (o) => html`<span class="badge kind">${o.kind}</span>` },
            { key: 'throughput_per_s', label: 'Rate', n: true, cell: (o) => fmtRate(o.throughput_per_s) },
            { key: 'error_rate', label: 'Error %', n: true, cell: (o) => html`<span class="${o.error_rate > 0.01 ? 'err' : ''}">${fmtPct(o.error_rate)}</span>` },
            { key: 'p50_ms', label: 'p50', n: true, cell: (o) => fmtMs(o.p50_ms) },
            { key: 'p95_ms', label: 'p95', n: true, cell: (o) => fmtMs(o.p95_ms) },
            { key: 'p99_ms', label: 'p99', n: true, cell: (o) => fmtMs(o.p99_ms) },
            { key: 'time_share', label: 'Time share', n: true, cell: (o) => barCell(o.time_share) },
          ], rows, { key: 'time_share', dir: -1 })}</div>`;
    },
    after(root) {
      for (const b of $$('#kinds .chip', root)) b.addEventListener('click', () => { state.kind = b.dataset.kind; refresh(); });
    },
  };

  /** Bars of a latency histogram (`/histogram` buckets), adjacent buckets merged into at most `max`. */
  function histBars(buckets, max = 30) {
    const per = Math.max(1, Math.ceil(buckets.length / max)); const bars = [];
    for (let i = 0; i < buckets.length; i += per) {
      const part = buckets.slice(i, i + per); const lo = part[0].lower_ms; const hi = part[part.length - 1].upper_ms;
      const n = part.reduce((sum, b) => sum + b.count, 0);
      bars.push({ label: fmtMs(lo), value: n, tip: html`${fmtMs(lo)} – ${fmtMs(hi)}: <b>${num(n)}</b> spans` });
    }
    return bars;
  }

  PAGES.operation = {
    async load(w) {
      const s = SERVICE; const name = query.get('name') || ''; const kind = query.get('kind') || '';
      svcTabs(s, 'service');
      setTitle(html`<a href="${U.service(s)}">${s}</a> › ${name} ${kind ? html`<span class="badge kind">${kind}</span>` : ''}`);
      document.title = `${name} · ${s} · rustmon`;
      const p = { from: w.from, to: w.to };
      const sel = { service: s, name, kind: kind || undefined, ...p };
      const [ops, ts, hist, slow, failed] = await Promise.all([
        get(`/services/${enc(s)}/operations`, { ...p, kind: kind || undefined }),
        get(`/services/${enc(s)}/timeseries`, { ...p, name, kind: kind || undefined }),
        get(`/services/${enc(s)}/histogram`, { ...p, name, kind: kind || undefined }),
        get('/traces', { ...sel, sort: 'slowest', limit: 10 }),
        get('/traces', { ...sel, status: 'error', limit: 10 })]);
      const o = ops.operations.find((x) => x.name === name);
      if (!o) return empty(`No ${name} calls in this time range`, html`<p>Pick a longer range, or go back to <a href="${U.service(s)}">${s}</a>.</p>`);
      const c = seriesCharts(ts, w);
      const histChart = hist.count ? chart({ type: 'bars', label: 'latency histogram', color: '#8250df', bars: histBars(hist.buckets) }) : '';
      const detail = (t) => attr(t, 'url.path') || attr(t, 'db.query.text') || attr(t, 'url.full') || '';
      return html`<div class="cards">
        <div class="card"><div class="k">Calls</div><div class="v">${num(o.count)}</div></div>
        <div class="card"><div class="k">Rate</div><div class="v">${fmtRate(o.throughput_per_s)}</div></div>
        <div class="card"><div class="k">Error rate</div><div class="v ${o.error_rate > 0.01 ? 'err' : ''}">${fmtPct(o.error_rate)}</div></div>
        <div class="card"><div class="k">p50</div><div class="v">${fmtMs(o.p50_ms)}</div></div>
        <div class="card"><div class="k">p95</div><div class="v">${fmtMs(o.p95_ms)}</div></div>
        <div class="card"><div class="k">p99</div><div class="v">${fmtMs(o.p99_ms)}</div></div>
        <div class="card"><div class="k">Time share</div><div class="v">${fmtPct(o.time_share)}</div></div></div>
        <div class="grid"><div class="panel"><h2>Latency percentiles</h2>${c.latency}</div>
        <div class="panel"><h2>Latency distribution <span class="muted">${num(hist.count)} spans</span></h2>${histChart || html`<p class="muted">No calls of this operation in the range.</p>`}</div>
        <div class="panel"><h2>Throughput</h2>${c.throughput}</div>
        <div class="panel"><h2>Error rate</h2>${c.errors}</div></div>
        <div class="grid"><div class="panel"><h2>Slowest traces</h2>${traceRows('slow', slow.traces, { detail })}</div>
        <div class="panel"><h2>Failed traces</h2>${traceRows('failed', failed.traces, { detail: (t) => t.status_message || detail(t), none: 'No failures in this time range.', sort: { key: 'start', dir: -1 } })}</div></div>`;
    },
  };

  PAGES.trace = {
    refresh: false,
    collapsed: new Set(), open: new Set(),
    async load() {
      const id = body.dataset.trace;
      let t;
      try { t = await get(`/traces/${enc(id)}`); } catch (e) {
        if (e.status === 404) return empty('Trace not found', html`<p>No spans of trace <code>${id}</code> are stored (yet). Spans arrive in batches: try again in a few seconds, or it may be older than the retention.</p>`);
        throw e;
      }
      this.t = t;
      const root = t.root || {};
      setTitle(html`Trace <span class="mono">${short(t.trace_id)}</span> · ${root.name || ''}`);
      const svcs = t.services;
      const errs = t.spans.filter((s) => s.status === 'error').length;
      const sel = query.get('span'); if (sel) this.open.add(sel);
      return html`<div class="cards">
        <div class="card"><div class="k">Root</div><div class="v" style="font-size:15px">${root.service ? html`<a href="${U.service(root.service)}">${root.service}</a> › ${root.name}` : '–'}</div></div>
        <div class="card"><div class="k">Duration</div><div class="v">${fmtMs(t.duration_ms)}</div></div>
        <div class="card"><div class="k">Spans</div><div class="v">${t.span_count}</div></div>
        <div class="card"><div class="k">Errors</div><div class="v ${errs ? 'err' : ''}">${errs}</div></div>
        <div class="card"><div class="k">Started</div><div class="v" style="font-size:15px">${fmtTime(Date.parse(t.start))}</div></div></div>
        <div class="panel"><div class="row"><h2 style="margin:0">Waterfall</h2>
          <span class="legend">${svcs.map((s) => html`<span><span class="dot" style="background:${raw(color(s))}"></span>${s}</span>`)}</span>
          <span style="flex:1"></span><button class="btn" id="expand">Expand all</button><button class="btn" id="collapse">Collapse all</button></div>
          <div class="wf" id="wf"></div></div>`;
    },
    after() {
      this.draw();
      const hl = $('.wf-row.hl');
      if (hl && !this.scrolled) { hl.scrollIntoView({ block: 'center' }); this.scrolled = true; }
    },
    draw() {
      const t = this.t; if (!t) return;
      const spans = t.spans; const byId = new Map(spans.map((s) => [s.span_id, s]));
      const kids = new Map();
      const roots = [];
      for (const s of spans) {
        if (s.parent_span_id && byId.has(s.parent_span_id)) { if (!kids.has(s.parent_span_id)) kids.set(s.parent_span_id, []); kids.get(s.parent_span_id).push(s); } else roots.push(s);
      }
      // N+1: flagged by the agent (db.n_plus_one), or seen here: one statement 5+ times under one parent
      const nplus = new Map();
      for (const [pid, list] of kids) {
        const c = new Map();
        for (const s of list) { const f = attr(s, 'db.query.summary'); if (f) c.set(f, (c.get(f) || 0) + 1); }
        for (const s of list) { const f = attr(s, 'db.query.summary'); if (f && c.get(f) >= 5) nplus.set(s.span_id, c.get(f)); }
        void pid;
      }
      const total = t.duration_ms || 1;
      const rows = [];
      const walk = (s, depth) => {
        rows.push([s, depth]);
        if (this.collapsed.has(s.span_id)) return;
        for (const k of (kids.get(s.span_id) || [])) walk(k, depth + 1);
      };
      roots.forEach((r) => walk(r, 0));
      const ticks = [0, 0.25, 0.5, 0.75, 1];
      const sel = query.get('span');
      const out = [html`<div class="wf-head"><div>Span</div><div class="wf-ruler">${ticks.map((f) => html`<span style="left:${raw(String(f * 100))}%;${raw(f === 0 ? 'transform:none' : f === 1 ? 'transform:translateX(-100%)' : '')}">${fmtMs(total * f)}</span>`)}</div></div>`];
      for (const [s, depth] of rows) {
        const n = (kids.get(s.span_id) || []).length;
        const left = (s.offset_ms / total) * 100; const width = Math.max(0.2, (s.duration_ms / total) * 100);
        const flagged = attr(s, 'db.n_plus_one') === true || attr(s, 'db.n_plus_one') === 'true';
        const np = nplus.get(s.span_id) || (flagged ? attr(s, 'db.n_plus_one.count') || '≥2' : 0);
        const durLeft = left + width > 80 ? `right:${(100 - left + 0.5).toFixed(2)}%` : `left:${(left + width + 0.5).toFixed(2)}%`;
        out.push(html`<div class="wf-row${raw(s.span_id === sel ? ' hl' : '')}${raw(this.open.has(s.span_id) ? ' sel' : '')}" data-span="${s.span_id}">
          <div class="wf-name" style="padding-left:${raw(String(depth * 14))}px">${n ? html`<button class="wf-tog" data-tog="${s.span_id}" aria-label="collapse or expand">${this.collapsed.has(s.span_id) ? raw('▶') : raw('▼')}</button>` : html`<span class="wf-tog"></span>`}
            <span class="dot" style="background:${raw(color(s.service))}"></span><span class="label" title="${s.service} · ${s.name}"><span class="muted">${s.service}</span> ${s.name}</span>
            ${s.kind !== 'internal' ? html`<span class="badge kind">${s.kind}</span>` : ''}${s.status === 'error' ? html`<span class="badge err">error</span>` : ''}${np ? html`<span class="badge warn np" title="the same statement ran ${np} times under one parent">N+1 ×${np}</span>` : ''}${attr(s, 'db.slow') === true ? html`<span class="badge warn">slow</span>` : ''}${n && this.collapsed.has(s.span_id) ? html`<span class="badge">${n} hidden</span>` : ''}</div>
          <div class="wf-track"><div class="wf-bar${raw(s.status === 'error' ? ' error' : '')}" style="left:${raw(left.toFixed(2))}%;width:${raw(width.toFixed(2))}%;background:${raw(color(s.service))}"></div><span class="wf-dur" style="${raw(durLeft)}">${fmtMs(s.duration_ms)}</span></div></div>`);
        if (this.open.has(s.span_id)) out.push(this.detail(s, np));
      }
      put($('#wf'), out);
    },
    detail(s, np) {
      const kv = (o) => { const e = Object.entries(o || {}); return e.length ? html`<div class="kv">${e.map(([k, v]) => html`<div>${k}</div><div>${typeof v === 'string' ? v : JSON.stringify(v)}</div>`)}</div>` : html`<p class="muted">none</p>`; };
      const fp = attr(s, 'db.query.summary');
      return html`<div class="wf-detail">
        <div class="row"><b>${s.name}</b> <span class="muted">${s.service} · ${s.kind} · ${fmtMs(s.duration_ms)} · at +${fmtMs(s.offset_ms)}</span>
          <a href="${U.op(s.service, s.kind, s.name)}">operation</a>${fp ? html` · <a href="${U.db(s.service, fp)}">statement</a>` : ''}</div>
        ${s.status === 'error' ? html`<div class="error-box">error${s.status_message ? html`: ${s.status_message}` : ''}</div>` : ''}
        ${np ? html`<p class="warn">N+1: this statement ran ${np} times under the same parent; batch it or join instead.</p>` : ''}
        <h2>Attributes</h2>${kv(s.attributes)}
        ${s.events && s.events.length ? html`<h2 style="margin-top:8px">Events</h2>${s.events.map((e) => html`<div><b>${e.name}</b> <span class="muted">${e.time}</span>${kv(e.attributes)}</div>`)}` : ''}
        <h2 style="margin-top:8px">Resource</h2>${kv(s.resource)}
        <p class="muted mono">span ${s.span_id}${s.parent_span_id ? ` · parent ${s.parent_span_id}` : ''}</p></div>`;
    },
  };
  document.addEventListener('click', (ev) => {
    if (PAGE !== 'trace') return;
    const P = PAGES.trace;
    const tog = ev.target.closest('[data-tog]');
    if (tog) { const id = tog.dataset.tog; if (P.collapsed.has(id)) P.collapsed.delete(id); else P.collapsed.add(id); P.draw(); return; }
    if (ev.target.closest('#expand')) { P.collapsed.clear(); P.draw(); return; }
    if (ev.target.closest('#collapse')) { for (const s of P.t.spans) if (P.t.spans.some((c) => c.parent_span_id === s.span_id)) P.collapsed.add(s.span_id); P.draw(); return; }
    if (ev.target.closest('a, .wf-detail')) return;
    const row = ev.target.closest('.wf-row');
    if (row) { const id = row.dataset.span; if (P.open.has(id)) P.open.delete(id); else P.open.add(id); P.draw(); }
  });

  PAGES.database = {
    expanded: new Set(),
    async load(w) {
      const s = SERVICE;
      if (!s) return servicePicker('database', 'Database statements', U.db);
      svcTabs(s, 'database');
      const p = { from: w.from, to: w.to };
      const [q, slow] = await Promise.all([get(`/services/${enc(s)}/queries`, p), get('/traces', { service: s, kind: 'client', sort: 'slowest', limit: 200, ...p })]);
      const want = query.get('q'); if (want) this.expanded.add(want);
      if (!q.queries.length) return empty(`No database statements from ${s} in this time range`, html`<p>Statements appear when the agent's database integration is on (e.g. the <code>sqlx</code> feature of <code>rustmon</code>), or when spans carry <code>db.query.text</code>.</p>`);
      const samples = {};
      await Promise.all([...this.expanded].filter((f) => q.queries.some((x) => x.fingerprint === f)).map(async (f) => {
        samples[f] = (await get('/traces', { service: s, kind: 'client', 'attr.db.query.summary': f, sort: 'slowest', limit: 10, ...p })).traces;
      }));
      const calls = q.queries.reduce((a, x) => a + x.calls, 0); const tot = q.queries.reduce((a, x) => a + x.total_ms, 0);
      const errs = q.queries.reduce((a, x) => a + x.errors, 0);
      const slowDb = slow.traces.filter(isDb).slice(0, 15);
      const rows = q.queries.map((x) => ({ ...x, share: tot ? x.total_ms / tot : 0 }));
      return html`<div class="cards"><div class="card"><div class="k">Statements</div><div class="v">${q.queries.length}</div></div>
        <div class="card"><div class="k">Calls</div><div class="v">${num(calls)}</div></div>
        <div class="card"><div class="k">Time in database</div><div class="v">${fmtMs(tot)}</div></div>
        <div class="card"><div class="k">Errors</div><div class="v ${errs ? 'err' : ''}">${num(errs)}</div></div></div>
        <div class="panel"><h2>Statements by fingerprint <span class="muted">click one for its slowest executions</span></h2>
        ${table('queries', [
          { key: 'fingerprint', label: 'Statement', cls: 'name', cell: (x) => html`<a href="#" class="mono" data-fp="${x.fingerprint}" aria-expanded="${samples[x.fingerprint] ? 'true' : 'false'}">${x.fingerprint}</a>` },
          { key: 'calls', label: 'Calls', n: true, cell: (x) => num(x.calls) },
          { key: 'total_ms', label: 'Total time', n: true, cell: (x) => barCell(x.share, '#8250df', fmtMs(x.total_ms)) },
          { key: 'avg_ms', label: 'Avg', n: true, narrow: true, cell: (x) => fmtMs(x.avg_ms) },
          { key: 'p95_ms', label: 'p95', n: true, cell: (x) => fmtMs(x.p95_ms) },
          { key: 'rows', label: 'Rows', n: true, cell: (x) => num(x.rows) },
          { key: 'errors', label: 'Errors', n: true, cell: (x) => html`<span class="${x.errors ? 'err' : ''}">${num(x.errors)}</span>` },
        ], rows, { key: 'total_ms', dir: -1 }, (x) => samples[x.fingerprint] && this.samples(samples[x.fingerprint]))}</div>
        <div class="panel"><h2>Slowest statements</h2>${traceRows('slowdb', slowDb, { none: 'No statements in this range.', detail: (t) => attr(t, 'db.query.text') || attr(t, 'db.query.summary') || '' })}</div>`;
    },
    samples(list) {
      if (!list.length) return html`<div class="muted">No stored spans for this statement in the range.</div>`;
      const rows = (n) => (n == null ? '' : `${n} row${n === 1 ? '' : 's'}`);
      return html`<div class="sub"><b>Slowest executions</b><table>${list.map((t) => html`<tr><td class="n">${fmtMs(t.duration_ms)}</td><td><a href="${U.trace(t.trace_id, t.span_id)}" class="mono">${short(t.trace_id)}</a>${statusBadge(t)}</td>
        <td class="hide-narrow muted">${fmtTime(t.start_unix_nano / 1e6)}</td><td class="n muted">${rows(attr(t, 'db.response.returned_rows'))}</td><td class="mono name">${attr(t, 'db.query.text') || ''}</td></tr>`)}</table></div>`;
    },
    after(root) {
      for (const a of $$('[data-fp]', root)) {
        a.addEventListener('click', (e) => { e.preventDefault(); const f = a.dataset.fp; if (this.expanded.has(f)) this.expanded.delete(f); else this.expanded.add(f); refresh(); });
      }
      const want = query.get('q');
      if (want && !this.scrolled) { const el = $$('[data-fp]', root).find((a) => a.dataset.fp === want); if (el) { el.scrollIntoView({ block: 'center' }); el.closest('tr').classList.add('hl'); } this.scrolled = true; }
    },
  };

  function destType(sp) {
    const a = (k) => attr(sp, k);
    if (a('db.system.name') || a('db.system')) return `database (${a('db.system.name') || a('db.system')})`;
    if (a('messaging.system')) return `messaging (${a('messaging.system')})`;
    if (a('rpc.system')) return a('rpc.system') === 'grpc' ? 'gRPC' : `RPC (${a('rpc.system')})`;
    if (a('http.request.method') || a('url.full')) return 'HTTP';
    return sp.kind;
  }
  /** The destination of a client span, as the collector names service-map edges. */
  const destOf = (sp) => {
    if (attr(sp, 'peer.service')) return attr(sp, 'peer.service');
    const a = attr(sp, 'server.address') || attr(sp, 'net.peer.name'); const port = attr(sp, 'server.port');
    if (a) return port != null && port !== '' ? `${a}:${port}` : a;
    return attr(sp, 'db.system.name') || attr(sp, 'db.system') || attr(sp, 'messaging.system');
  };

  PAGES.external = {
    async load(w) {
      const s = SERVICE;
      if (!s) return servicePicker('external', 'External calls', U.ext);
      svcTabs(s, 'external');
      const p = { from: w.from, to: w.to };
      const [deps, svcs, sample, ops] = await Promise.all([get('/dependencies', p), get('/services', p),
        get('/traces', { service: s, kind: 'client', limit: 200, ...p }), get(`/services/${enc(s)}/operations`, { kind: 'client', ...p })]);
      const known = new Set(svcs.services.map((x) => x.service));
      const types = {}; const examples = {};
      for (const sp of sample.traces) { const d = destOf(sp); if (d && !types[d]) { types[d] = destType(sp); examples[d] = sp; } }
      // destinations the sample missed: ask for one client span of each
      const missing = deps.edges.filter((e) => e.caller === s && !known.has(e.callee) && !types[e.callee]).slice(0, 30);
      await Promise.all(missing.map(async (e) => {
        const m = /^(.*):(\d+)$/.exec(e.callee);
        const f = m ? { 'attr.server.address': m[1], 'attr.server.port': m[2] } : { 'attr.peer.service': e.callee };
        const r = await get('/traces', { service: s, kind: 'client', limit: 1, ...f, ...p }).catch(() => ({ traces: [] }));
        if (r.traces[0]) { types[e.callee] = destType(r.traces[0]); examples[e.callee] = r.traces[0]; }
      }));
      const mins = (w.t1 - w.t0) / 60e3;
      const rows = deps.edges.filter((e) => e.caller === s).map((e) => ({ ...e, destination: e.callee, type: known.has(e.callee) ? 'service' : (types[e.callee] || 'unknown'), rate: e.calls / mins }));
      const slowest = (await get('/traces', { service: s, kind: 'client', sort: 'slowest', limit: 15, ...p })).traces;
      if (!rows.length && !ops.operations.length) return empty(`No outgoing calls from ${s} in this time range`, html`<p>Outgoing HTTP, gRPC, Redis or Kafka calls appear when the agent records client spans (e.g. the <code>reqwest</code> feature) with <code>server.address</code>.</p>`);
      return html`<div class="panel"><h2>By destination</h2>${rows.length ? table('dests', [
        { key: 'destination', label: 'Destination', cls: 'name', cell: (e) => known.has(e.callee) ? html`<a href="${U.service(e.callee)}">${e.callee}</a>` : html`<span class="mono">${e.callee}</span>` },
        { key: 'type', label: 'Type', cell: (e) => html`<span class="badge kind">${e.type}</span>` },
        { key: 'calls', label: 'Calls', n: true, cell: (e) => num(e.calls) },
        { key: 'rate', label: 'Rate', n: true, cell: (e) => html`${num(e.rate, 1)}/min` },
        { key: 'error_rate', label: 'Errors', n: true, cell: (e) => html`<span class="${e.error_rate > 0.01 ? 'err' : ''}">${fmtPct(e.error_rate)}</span>` },
        { key: 'p95_ms', label: 'p95', n: true, cell: (e) => fmtMs(e.p95_ms) },
        { key: 'example', label: 'Example', narrow: true, get: (e) => e.callee, cell: (e) => examples[e.callee] ? html`<a href="${U.trace(examples[e.callee].trace_id, examples[e.callee].span_id)}">${examples[e.callee].name}</a>` : '' },
      ], rows, { key: 'calls', dir: -1 }) : html`<p class="muted">No destinations known yet (client spans need <code>server.address</code> or a child span in another service).</p>`}</div>
        <div class="panel"><h2>Outgoing operations</h2>${table('cops', [
          { key: 'name', label: 'Operation', cls: 'name', cell: (o) => html`<a href="${U.op(s, o.kind, o.name)}">${o.name}</a>` },
          { key: 'throughput_per_s', label: 'Rate', n: true, cell: (o) => fmtRate(o.throughput_per_s) },
          { key: 'error_rate', label: 'Error %', n: true, cell: (o) => fmtPct(o.error_rate) },
          { key: 'p50_ms', label: 'p50', n: true, cell: (o) => fmtMs(o.p50_ms) },
          { key: 'p95_ms', label: 'p95', n: true, cell: (o) => fmtMs(o.p95_ms) },
          { key: 'time_share', label: 'Time share', n: true, cell: (o) => barCell(o.time_share, '#bc4c00') },
        ], ops.operations, { key: 'time_share', dir: -1 })}</div>
        <div class="panel"><h2>Slowest outgoing calls</h2>${traceRows('slowext', slowest, { detail: (t) => html`${destOf(t) || ''} ${attr(t, 'url.full') || attr(t, 'db.query.summary') || ''}` })}</div>`;
    },
  };

  const RUNTIME = [
    ['CPU', ['process.cpu.utilization']], ['Memory (RSS)', ['process.memory.usage']],
    ['Heap (live)', ['rustmon.heap.live']], ['Tasks', ['tokio.tasks.alive', 'rustmon.task.polls']],
    ['Threads', ['process.thread.count', 'rustmon.thread.count']], ['Allocation rate', ['rustmon.heap.allocation_rate']],
  ];
  const unitFmt = (unit, name) => unit === 'By' || /bytes|memory|heap\.(live|allocated|freed)/.test(name) ? fmtBytes
    : unit === '1' && /utilization|ratio/.test(name) ? fmtPct : unit === 's' ? (v) => `${num(v, 2)} s` : unit === 'ms' ? fmtMs : (v) => num(v, v < 10 ? 2 : 0);
  const attrLabel = (a) => { const e = Object.entries(a || {}); return e.length ? e.map(([k, v]) => `${k}=${v}`).join(', ') : 'all'; };

  PAGES.runtime = {
    extra: new Set(),
    async load(w) {
      const s = SERVICE;
      if (!s) return servicePicker('runtime', 'Runtime metrics', U.runtime);
      svcTabs(s, 'runtime');
      const p = { from: w.from, to: w.to };
      const [names, ts] = await Promise.all([get(`/services/${enc(s)}/metrics`), get(`/services/${enc(s)}/timeseries`, p)]);
      const have = new Map(names.metrics.map((m) => [m.name, m]));
      const chosen = [];
      for (const [title, cands] of RUNTIME) { const n = cands.find((c) => have.has(c)); if (n) chosen.push([title, n]); }
      for (const n of this.extra) if (have.has(n) && !chosen.some((c) => c[1] === n)) chosen.push([n, n]);
      const c = seriesCharts(ts, w);
      if (!names.metrics.length) return html`${empty(`No runtime metrics from ${s}`, html`<p>Turn on the runtime plugin in the agent (the <code>runtime</code> feature of <code>rustmon</code>): it reports CPU, memory, heap, tasks and threads every few seconds as OTLP metrics.</p>`)}<div class="panel" style="margin-top:14px"><h2>Latency (for comparison)</h2>${c.latency}</div>`;
      const data = await Promise.all(chosen.map(([, n]) => get(`/services/${enc(s)}/metrics`, { name: n, ...p }).catch(() => null)));
      const panels = chosen.map(([title, n], i) => {
        const d = data[i]; if (!d || !d.series.length) return html`<div class="panel"><h2>${title}</h2><p class="muted">No points of <code>${n}</code> in this range.</p></div>`;
        const times = [...new Set(d.series.flatMap((x) => x.points.map((pt) => Date.parse(pt.time))))].sort((a, b) => a - b);
        const series = d.series.slice(0, 8).map((x, j) => {
          const m = new Map(x.points.map((pt) => [Date.parse(pt.time), pt.value]));
          return { name: attrLabel(x.attributes), color: PAL[j % PAL.length], values: times.map((t) => (m.has(t) ? m.get(t) : null)) };
        });
        return html`<div class="panel"><h2>${title} <span class="muted mono">${n}${d.unit ? ` (${d.unit})` : ''}</span></h2>${chart({ times, domain: [w.t0, w.t1], fmt: unitFmt(d.unit, n), series, label: n, legend: d.series.length > 1 })}</div>`;
      });
      const others = names.metrics.filter((m) => !chosen.some((c2) => c2[1] === m.name) && m.name !== 'rustmon.operation.duration');
      return html`<p class="muted">Charts share the time axis with the latency chart; series are split by the metric's attributes.</p>
        <div class="grid"><div class="panel"><h2>Latency (p50 / p95 / p99)</h2>${c.latency}</div>${panels}</div>
        ${others.length ? html`<div class="panel"><h2>More metrics</h2><div class="chips">${others.map((m) => html`<button class="chip" data-metric="${m.name}" title="${m.kind}, ${num(m.points)} points">${m.name}</button>`)}</div></div>` : ''}`;
    },
    after(root) { for (const b of $$('[data-metric]', root)) b.addEventListener('click', () => { this.extra.add(b.dataset.metric); refresh(); }); },
  };

  const OTHER_ERRORS = '_OTHER';
  PAGES.errors = {
    async load(w) {
      const s = query.get('service') || '';
      if (s) svcTabs(s, 'errors');
      if (s) setTitle(html`Errors · ${s}`);
      const d = await get('/errors', { service: s || undefined, from: w.from, to: w.to, limit: 500 });
      if (!d.groups.length) return empty('No errors in this time range', html`<p>Nothing failed${s ? html` in <b>${s}</b>` : ''}. Errors are spans with status <code>error</code>: failed requests (5xx), exceptions, failed statements and calls.</p>`);
      const rows = d.groups.map((g) => ({ ...g, first: g.first_seen_unix_nano / 1e6, last: g.last_seen_unix_nano / 1e6 }));
      const where = (g) => {
        const [top, ...more] = g.operations;
        return html`<a href="${U.service(g.service)}">${g.service}</a>${top ? html` › <a href="${U.op(g.service, top.kind, top.name)}">${top.name}</a>` : ''}${more.length ? html` <span class="muted" title="${more.map((o) => `${o.name}: ${o.count}`).join(', ')}">+${more.length}</span>` : ''}`;
      };
      const what = (g) => g.type === OTHER_ERRORS
        ? html`<b class="err">other errors</b><div class="muted">more distinct errors in a minute than the collector keeps apart</div>`
        : html`<b class="err">${g.type}</b><div class="mono">${g.message || html`<span class="muted">(no message)</span>`}</div>`;
      return html`<p class="muted">${num(d.total)} failed spans in the range, grouped by service, error type and message with numbers and ids masked${d.truncated ? html` (the ${num(d.groups.length)} most frequent groups)` : ''}.</p>
        <div class="panel">${table('errors', [
          { key: 'type', label: 'Error', cls: 'name', cell: what },
          { key: 'service', label: 'Where', cls: 'name', cell: where },
          { key: 'count', label: 'Count', n: true, cell: (g) => num(g.count) },
          { key: 'first', label: 'First seen', n: true, narrow: true, cell: (g) => html`<span title="${fmtTime(g.first)}">${fmtAgo(g.first)}</span>` },
          { key: 'last', label: 'Last seen', n: true, cell: (g) => html`<span title="${fmtTime(g.last)}">${fmtAgo(g.last)}</span>` },
          { key: 'examples', label: 'Examples', get: (g) => g.count, cell: (g) => g.examples.map((x) => html`<a class="mono" href="${U.trace(x.trace_id, x.span_id)}">${short(x.trace_id)}</a> `) },
        ], rows, { key: 'count', dir: -1 })}</div>`;
    },
  };

  PAGES.map = {
    async load(w) {
      const p = { from: w.from, to: w.to };
      const [deps, svcs] = await Promise.all([get('/dependencies', p), get('/services', p)]);
      const info = new Map(svcs.services.map((s) => [s.service, s]));
      if (!deps.edges.length && !svcs.services.length) return empty('No data yet', otlpHint());
      const nodes = new Set(svcs.services.map((s) => s.service));
      for (const e of deps.edges) { nodes.add(e.caller); nodes.add(e.callee); }
      // layers: longest path from a caller-less node (cycles cut after |nodes| rounds)
      const layer = new Map([...nodes].map((n) => [n, 0]));
      for (let i = 0; i < nodes.size; i++) {
        let changed = false;
        for (const e of deps.edges) if (e.caller !== e.callee && layer.get(e.callee) < layer.get(e.caller) + 1 && layer.get(e.caller) + 1 < nodes.size) { layer.set(e.callee, layer.get(e.caller) + 1); changed = true; }
        if (!changed) break;
      }
      const cols = [];
      for (const n of [...nodes].sort()) { const l = layer.get(n); (cols[l] || (cols[l] = [])).push(n); }
      // fewer crossings: order each column by the mean position of its callers (two passes)
      for (let pass = 0; pass < 2; pass++) {
        for (let i = 1; i < cols.length; i++) {
          if (!cols[i]) continue;
          const prev = new Map((cols[i - 1] || []).map((n, j) => [n, j]));
          const bary = (n) => { const ps = deps.edges.filter((e) => e.callee === n && prev.has(e.caller)).map((e) => prev.get(e.caller)); return ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : Infinity; };
          const bs = new Map(cols[i].map((n) => [n, bary(n)]));
          cols[i].sort((a, b) => bs.get(a) - bs.get(b) || a.localeCompare(b));
        }
      }
      const NW = 210; const NH = 46; const GX = 170; const GY = 26;
      const pos = new Map();
      const H = Math.max(...cols.map((c) => (c || []).length)) * (NH + GY) + GY;
      cols.forEach((c, i) => (c || []).forEach((n, j) => {
        const off = (H - c.length * (NH + GY)) / 2;
        pos.set(n, { x: 20 + i * (NW + GX), y: off + GY / 2 + j * (NH + GY) });
      }));
      const W = 40 + cols.length * (NW + GX) - GX;
      const mins = (w.t1 - w.t0) / 60e3;
      let g = '<defs><marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#8c959f"/></marker></defs>';
      const maxCalls = Math.max(1, ...deps.edges.map((e) => e.calls));
      const placed = []; let labels = '';
      const label = (x, y, text) => {
        const w = text.length * 5.6 + 6;
        for (let k = 0; k < 8 && placed.some((q) => Math.abs(q.x - x) < (q.w + w) / 2 && Math.abs(q.y - y) < 12); k++) y += 12;
        placed.push({ x, y, w });
        labels += `<text class="elabel" x="${x.toFixed(1)}" y="${y.toFixed(1)}" text-anchor="middle">${esc(text)}</text>`;
      };
      for (const e of deps.edges) {
        const a = pos.get(e.caller); const b = pos.get(e.callee); if (!a || !b) continue;
        const x1 = a.x + NW; const y1 = a.y + NH / 2; const x2 = b.x; const y2 = b.y + NH / 2; const mx = (x1 + x2) / 2;
        const sw = (1 + 3 * Math.log10(1 + 9 * (e.calls / maxCalls))).toFixed(1);
        const d = b.x > a.x ? `M${x1},${y1}C${mx},${y1} ${mx},${y2} ${x2},${y2}` : `M${a.x + NW / 2},${a.y + NH}C${a.x + NW / 2},${a.y + NH + 40} ${b.x + NW / 2},${b.y + NH + 40} ${b.x + NW / 2},${b.y + NH}`;
        g += `<path class="edge${e.error_rate > 0.05 ? ' bad' : ''}" d="${d}" stroke-width="${sw}" marker-end="url(#arr)"><title>${esc(`${e.caller} → ${e.callee}: ${num(e.calls)} calls, ${fmtPct(e.error_rate)} errors, p95 ${fmtMs(e.p95_ms)}`)}</title></path>`;
        // label at 70 % of the curve, near the callee, where fanned-out edges are apart
        const bz = (t, a0, a1, a2, a3) => (1 - t) ** 3 * a0 + 3 * (1 - t) ** 2 * t * a1 + 3 * (1 - t) * t * t * a2 + t ** 3 * a3;
        const lx = b.x > a.x ? bz(0.7, x1, mx, mx, x2) : mx; const ly = b.x > a.x ? bz(0.7, y1, y1, y2, y2) : (y1 + y2) / 2;
        label(lx, ly - 4, `${num(e.calls / mins, 1)}/min${e.errors ? ` · ${fmtPct(e.error_rate)} err` : ''}`);
      }
      g += labels;
      for (const [n, q] of pos) {
        const s = info.get(n); const name = n.length > 27 ? `${n.slice(0, 26)}…` : n;
        const sub = s ? `${fmtRate(s.throughput_per_s)} · ${fmtPct(s.error_rate)} err · p95 ${fmtMs(s.p95_ms)}` : 'not instrumented';
        const inner = `<rect x="${q.x}" y="${q.y}" width="${NW}" height="${NH}"/><circle cx="${q.x + 12}" cy="${q.y + 16}" r="5" fill="${s ? color(n) : '#8c959f'}"/>`
          + `<text x="${q.x + 22}" y="${q.y + 20}">${esc(name)}</text><text class="sub" x="${q.x + 10}" y="${q.y + 37}">${esc(sub)}</text><title>${esc(n)}</title>`;
        g += s ? `<a href="${esc(U.service(n))}" class="node svc">${inner}</a>` : `<g class="node">${inner}</g>`;
      }
      return html`<div class="panel map"><h2>Service map <span class="muted">calls per minute on each edge; red when more than 5 % fail</span></h2>
        ${deps.edges.length ? '' : html`<p class="muted">No calls between services in this range: edges come from client spans (with <code>server.address</code>) and from parent/child spans across services.</p>`}
        <div class="scroll">${raw(`<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="service map">${g}</svg>`)}</div></div>
        <div class="panel"><h2>Edges</h2>${table('edges', [
          { key: 'caller', label: 'Caller', cell: (e) => info.has(e.caller) ? html`<a href="${U.service(e.caller)}">${e.caller}</a>` : e.caller },
          { key: 'callee', label: 'Callee', cell: (e) => info.has(e.callee) ? html`<a href="${U.service(e.callee)}">${e.callee}</a>` : html`<span class="mono">${e.callee}</span>` },
          { key: 'calls', label: 'Calls', n: true, cell: (e) => num(e.calls) },
          { key: 'error_rate', label: 'Errors', n: true, cell: (e) => html`<span class="${e.error_rate > 0.05 ? 'err' : ''}">${fmtPct(e.error_rate)}</span>` },
          { key: 'p95_ms', label: 'p95', n: true, cell: (e) => fmtMs(e.p95_ms) },
        ], deps.edges, { key: 'calls', dir: -1 })}</div>`;
    },
  };

  // Known plugin configurations (the agents validate too, and report what they reject).
  const SCHEMAS = {
    core: { enabled: 'boolean', sample_rate: 'number', slow_threshold_ms: 'integer', queue_capacity: 'integer', batch_size: 'integer', batch_interval_ms: 'integer', metrics_interval_ms: 'integer', max_name_len: 'integer', max_attribute_len: 'integer', max_attributes: 'integer', max_names: 'integer' },
    db: { query_len: 'integer', record_params: 'boolean', record_raw_statement: 'boolean', max_rows: 'integer', slow_threshold_ms: 'integer', n_plus_one_threshold: 'integer' },
    http_server: { request_headers: 'boolean', request_remote_addr: 'boolean', response_body: 'boolean', response_body_max_size: 'integer', response_headers: 'boolean', response_code: 'boolean', ignore_routes: 'string[]', header_allow: 'string[]', header_deny: 'string[]', redact_sensitive_headers: 'boolean', client_errors_are_errors: 'boolean' },
    runtime: { interval_ms: 'integer', process: 'boolean', threads: 'boolean', heap: 'boolean', tokio: 'boolean', profile: 'boolean', profile_sample_bytes: 'integer', profile_interval_ms: 'integer', profile_order: 'string', profile_ascending: 'boolean', profile_limit: 'integer' },
  };
  const RANGES_OK = {
    'core.sample_rate': (v) => v >= 0 && v <= 1 || 'must be between 0 and 1',
    'db.max_rows': (v) => v <= 1000 || 'must be at most 1000',
    'db.n_plus_one_threshold': (v) => v !== 1 || 'must be 0 (off) or at least 2',
  };
  /** Checks a configuration text; returns [errors, warnings, value]. */
  function validateConfig(text) {
    let v;
    try { v = JSON.parse(text); } catch (e) {
      const m = /position (\d+)/.exec(e.message); let where = '';
      if (m) { const before = text.slice(0, Number(m[1])); const line = before.split('\n').length; where = ` (line ${line}, column ${Number(m[1]) - before.lastIndexOf('\n')})`; }
      return [[`not valid JSON${where}: ${e.message}`], [], null];
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) return [['the configuration must be a JSON object of plugin name to settings, like {"db": {"slow_threshold_ms": 200}}'], [], null];
    const errs = []; const warns = [];
    const typeOk = (t, x) => t === 'boolean' ? typeof x === 'boolean' : t === 'integer' ? Number.isInteger(x) && x >= 0 : t === 'number' ? typeof x === 'number' : t === 'string' ? typeof x === 'string' : Array.isArray(x) && x.every((y) => typeof y === 'string');
    for (const [plugin, cfg] of Object.entries(v)) {
      if (!cfg || typeof cfg !== 'object' || Array.isArray(cfg)) { errs.push(`${plugin}: must be an object of settings`); continue; }
      const sch = SCHEMAS[plugin];
      if (!sch) { warns.push(`${plugin}: not a built-in plugin; only agents that register it will use it`); continue; }
      for (const [k, x] of Object.entries(cfg)) {
        if (!(k in sch)) { errs.push(`${plugin}.${k}: unknown setting; expected one of ${Object.keys(sch).join(', ')}`); continue; }
        if (!typeOk(sch[k], x)) { errs.push(`${plugin}.${k}: must be ${sch[k] === 'string[]' ? 'a list of strings' : sch[k] === 'integer' ? 'a whole number ≥ 0' : `a ${sch[k]}`}, got ${JSON.stringify(x)}`); continue; }
        const r = RANGES_OK[`${plugin}.${k}`]; const ok = r ? r(x) : true;
        if (ok !== true) errs.push(`${plugin}.${k}: ${ok}, got ${JSON.stringify(x)}`);
      }
    }
    return [errs, warns, v];
  }

  PAGES.settings = {
    refresh: false,
    async load(w) {
      const s = SERVICE;
      if (!s) {
        const d = await get('/services', { from: new Date(w.t1 - 7 * 86400e3).toISOString().replace(/\.\d{3}Z$/, 'Z'), to: w.to });
        return html`<div class="panel"><h2>Central configuration</h2><p>Each service's agents poll <code>/api/v1/config/&lt;service&gt;</code> (set <code>RUSTMON_API_URL=${location.origin}</code> in the agent) and apply changes live.</p>
          ${d.services.length ? html`<ul>${d.services.map((x) => html`<li><a href="${U.settings(x.service)}">${x.service}</a></li>`)}</ul>` : html`<p class="muted">No services have reported in the last 7 days.</p>`}
          <form class="row" id="goto"><input id="svcname" placeholder="service name" aria-label="service name" required> <button class="btn">Open</button></form></div>`;
      }
      svcTabs(s, 'settings');
      const r = await api(`/config/${enc(s)}`);
      this.version = r.body.version;
      const text = JSON.stringify(r.body.config || {}, null, 2);
      return html`<div class="panel"><h2>Configuration of ${s} <span class="muted" id="ver">version ${r.body.version}${r.body.updated ? `, changed ${fmtTime(Date.parse(r.body.updated))}` : ' (default: nothing set)'}</span></h2>
        <p class="muted">A JSON object of plugin name to settings, e.g. <code>{"db": {"slow_threshold_ms": 200}, "http_server": {"ignore_routes": ["/health"]}}</code>. Built-in plugins: ${Object.keys(SCHEMAS).join(', ')}.</p>
        <textarea id="cfg" spellcheck="false" aria-label="configuration">${text}</textarea>
        <div id="check"></div>
        <div class="row"><button class="btn primary" id="save">Save</button><button class="btn" id="format">Format</button><button class="btn" id="revert">Revert</button><span id="saved"></span></div></div>
        <div class="panel"><h2>Agents <span class="muted">the version each agent has applied</span></h2><div id="agents"><p class="loading">Loading…</p></div></div>`;
    },
    after(root) {
      const s = SERVICE;
      if (!s) {
        const f = $('#goto', root);
        if (f) f.addEventListener('submit', (e) => { e.preventDefault(); const n = $('#svcname').value.trim(); if (n) location.href = U.settings(n); });
        return;
      }
      const ta = $('#cfg', root); const original = ta.value;
      const check = () => {
        const [errs, warns] = validateConfig(ta.value);
        put($('#check'), html`${errs.map((e) => html`<div class="msg-err">✗ ${e}</div>`)}${warns.map((e) => html`<div class="warn">! ${e}</div>`)}`);
        $('#save').disabled = errs.length > 0;
        return errs.length === 0;
      };
      ta.addEventListener('input', check); check();
      $('#format').addEventListener('click', () => { const [errs, , v] = validateConfig(ta.value); if (!errs.length || v) ta.value = JSON.stringify(v, null, 2); check(); });
      $('#revert').addEventListener('click', () => { ta.value = original; check(); });
      $('#save').addEventListener('click', async () => {
        if (!check()) return;
        const out = $('#saved'); put(out, 'Saving…'); out.className = '';
        try {
          const r = await fetch(`/api/v1/config/${enc(s)}`, { method: 'PUT', headers: { 'content-type': 'application/json', 'if-match': `"${this.version}"` }, body: ta.value });
          const b = await r.json().catch(() => ({}));
          if (r.status === 412) throw new Error('Someone else changed this configuration since you opened it. Copy your changes, reload the page and apply them again.');
          if (!r.ok) throw new Error(b.error || `${r.status} ${r.statusText}`);
          this.version = b.version;
          put($('#ver'), `version ${b.version}, changed ${fmtTime(Date.parse(b.updated))}`);
          out.className = 'msg-ok'; put(out, `Saved as version ${b.version}. Agents apply it on their next poll.`);
          this.agents();
        } catch (e) { out.className = 'msg-err'; put(out, `Not saved: ${e.message}`); }
      });
      this.agents();
      clearInterval(this.poll); this.poll = setInterval(() => { if (!document.hidden) this.agents(); }, 5000);
    },
    async agents() {
      const el = $('#agents'); if (!el) return;
      try {
        const d = await get(`/config/${enc(SERVICE)}/status`);
        if (!d.agents.length) { put(el, html`<p class="muted">No agent has reported on this configuration yet. Agents poll it when <code>RUSTMON_API_URL=${location.origin}</code> is set (or the builder's <code>remote_config</code>), and report the version they applied.</p>`); return; }
        put(el, table('agents', [
          { key: 'instance', label: 'Instance', cls: 'name', cell: (a) => html`<span class="mono">${a.instance}</span>` },
          { key: 'version', label: 'Applied version', n: true, cell: (a) => a.version },
          { key: 'state', label: 'State', get: (a) => (a.error ? 2 : a.version >= this.version ? 0 : 1), cell: (a) => a.error ? html`<span class="err">rejected a newer version: ${a.error}</span>` : a.version >= this.version ? html`<span class="ok">up to date</span>` : html`<span class="warn">waiting for next poll</span>` },
          { key: 'time_ns', label: 'Reported', n: true, cell: (a) => a.time_ns ? fmtAgo(a.time_ns / 1e6) : '–' },
        ], d.agents, { key: 'instance', dir: 1 }));
      } catch (e) { put(el, errorBox(e)); }
    },
  };

  PAGES.notfound = {
    refresh: false,
    async load() { return empty('Page not found', html`<p>Go to the <a href="/ui/">services</a>.</p>`); },
  };

  controls();
  schedule();
  refresh();
})();
