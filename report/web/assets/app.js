// Loadswarm dashboard and report. Plain ES2020, no build step.
//
// One script, two modes: a page holding #loadswarm-data is a report (all
// data inline; it never fetches anything); any other page is the live
// dashboard, fed by the node's /v1/stream server-sent events.
(function () {
  'use strict';

  const dataEl = document.getElementById('loadswarm-data');
  const REPORT = !!dataEl;
  const TERMINAL = new Set(['done', 'finished', 'stopped', 'failed']);
  const STOPPABLE = new Set(['pending', 'running']);
  const ARROW = '\u2192';
  const DASH = '\u2013';

  window.loadswarmRenders = 0;

  // ---- small helpers ---------------------------------------------------

  const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  const obj = (v) => (isObj(v) ? v : {});
  const arr = (v) => (Array.isArray(v) ? v : []);
  const num = (v) => (typeof v === 'number' && isFinite(v) ? v : null);
  const str = (v) => (v === null || v === undefined ? '' : String(v));

  // h builds an element. Text always goes in as text, never as markup.
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const k of Object.keys(attrs)) {
        const v = attrs[k];
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = str(v);
        else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    add(el, kids);
    return el;
  }
  function add(el, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      el.appendChild(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return el;
  }
  const byId = (id) => document.getElementById(id);
  // put replaces el's children (skipping null, false and undefined).
  function put(el, ...kids) {
    el.replaceChildren();
    return add(el, kids);
  }

  function sortedKeys(m) {
    return Object.keys(obj(m)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  }

  // ---- formatting ------------------------------------------------------

  function fmtInt(v) {
    v = num(v);
    return v === null ? DASH : Math.round(v).toLocaleString('en-US');
  }
  function fmtFloat(v) {
    v = num(v);
    if (v === null) return DASH;
    const a = Math.abs(v);
    const d = a === 0 ? 0 : a < 10 ? 2 : a < 100 ? 1 : 0;
    return v.toLocaleString('en-US', { minimumFractionDigits: 0, maximumFractionDigits: d });
  }
  function fmtMs(v) {
    v = num(v);
    return v === null ? DASH : fmtFloat(v) + ' ms';
  }
  function fmtRate(v) {
    v = num(v);
    return v === null ? DASH : fmtFloat(v) + '/s';
  }
  function fmtPct(v) {
    v = num(v);
    if (v === null) return DASH;
    const p = v * 100;
    return (p !== 0 && Math.abs(p) < 0.1 ? p.toFixed(3) : p.toFixed(2)) + '%';
  }
  function fmtSec(v) {
    v = num(v);
    return v === null ? DASH : fmtFloat(v) + ' s';
  }
  function fmtDur(v) {
    v = num(v);
    if (v === null) return DASH;
    if (v < 60) return fmtFloat(v) + ' s';
    const m = Math.floor(v / 60);
    const s = Math.round(v - m * 60);
    if (m < 60) return m + 'm ' + s + 's';
    return Math.floor(m / 60) + 'h ' + (m % 60) + 'm ' + s + 's';
  }
  function fmtTime(v) {
    if (!v) return DASH;
    const d = new Date(v);
    if (isNaN(d.getTime()) || d.getUTCFullYear() < 1000) return str(v) === '0001-01-01T00:00:00Z' ? DASH : str(v);
    return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }
  function shortNum(v) {
    v = num(v);
    return v === null ? '' : String(Math.round(v * 100) / 100);
  }

  // ---- palette and dash patterns --------------------------------------

  // Okabe-Ito, then Paul Tol's muted colours: colour-blind safe. Series are
  // also told apart by dash pattern, and the legend names each.
  const COLORS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000',
    '#882255', '#117733', '#999933', '#332288', '#AA4499'];
  const DASHES = [[], [8, 4], [2, 3], [12, 4, 2, 4], [4, 4], [1, 5], [16, 4], [8, 3, 2, 3, 2, 3],
    [6, 2, 1, 2], [20, 5, 5, 5], [3, 6], [10, 2]];
  function style(i) {
    const dash = i < DASHES.length ? DASHES[i] : [4 + (i % 9) * 2, 3, 1 + Math.floor(i / 9), 3];
    return { color: COLORS[i % COLORS.length], dash };
  }

  // ---- state -------------------------------------------------------------

  const S = {
    data: null, // report mode: the ReportData
    fleet: null, // live: the last fleet event
    selected: null, // live: the test shown
    fromHash: false, // the selection came from the URL (else automatic)
    status: null, // live: the selected test's last TestStatus
    results: {}, // live: test id -> {pending} | {data} | {error, at}
    stop: {}, // live: test id -> {pending, text, error}
    unknown: null, // live: a selected test this node refused to stream (not known here)
    es: null,
    retry: null,
    connected: false,
    charts: {}, // chart id -> {wrap, body, u, key, marks}
    fleetDone: false,
    testDone: false,
    built: false,
  };

  // ---- layout -----------------------------------------------------------

  function build() {
    const app = byId('app') || document.body.appendChild(h('div', { id: 'app' }));
    put(app, ...[
      h('header', { id: 'header', class: 'top' },
        h('h1', null, 'Loadswarm'),
        h('span', { id: 'subtitle', class: 'subtitle' }),
        h('span', { id: 'conn', class: 'conn' })),
      h('div', { id: 'banner', class: 'banner', role: 'alert', hidden: true }, 'disconnected, retrying'),
      REPORT ? null : h('div', { class: 'live-top' },
        h('section', { id: 'fleet', class: 'panel' },
          h('h2', null, 'Fleet'),
          h('p', { id: 'fleet-count', class: 'count' }, 'waiting for the node' + '\u2026'),
          h('div', { id: 'fleet-regions' })),
        h('section', { id: 'tests-panel', class: 'panel' },
          h('h2', null, 'Tests'),
          h('div', { id: 'tests-wrap' }))),
      h('section', { id: 'test', class: 'test-view' },
        h('div', { id: 'test-head' }),
        h('div', { id: 'charts', class: 'charts' }),
        h('div', { id: 'test-tail' }))].filter(Boolean));
    S.built = true;
  }

  function setReady() {
    window.loadswarmRenders++;
    if (document.body.dataset.ready !== '1') {
      const ready = REPORT || (S.fleetDone && (!S.selected || S.testDone || !testKnown(S.selected)));
      if (ready) document.body.dataset.ready = '1';
    }
  }

  function testKnown(id) {
    return !!(S.fleet && arr(S.fleet.tests).some((t) => t && t.id === id));
  }

  // ---- tables -----------------------------------------------------------

  function table(id, heads, rows, empty) {
    const body = h('tbody', null, rows);
    if (!rows.length && empty) body.appendChild(h('tr', { class: 'empty' }, h('td', { colspan: heads.length }, empty)));
    return h('table', { id, class: 'grid' },
      h('thead', null, h('tr', null, heads.map((x) => {
        const n = typeof x === 'object' ? x : { t: x };
        return h('th', { class: n.n ? 'n' : null }, n.t);
      }))),
      body);
  }
  const td = (text, cls, attrs) => h('td', Object.assign({ class: cls || null }, attrs || {}), text);
  const tdn = (text, attrs) => td(text, 'n', attrs);

  function section(id, title, ...kids) {
    return h('section', { id, class: 'block' }, h('h3', null, title), kids);
  }

  // ---- fleet (live) -----------------------------------------------------

  function renderFleet() {
    const f = obj(S.fleet);
    const peers = arr(f.peers).filter(isObj);
    const parts = obj(f.participants);
    const testsOf = {};
    for (const id of Object.keys(parts)) {
      for (const n of arr(parts[id])) (testsOf[n] = testsOf[n] || []).push(id);
    }
    const states = {};
    for (const p of peers) states[p.state || 'unknown'] = (states[p.state || 'unknown'] || 0) + 1;
    let line = peers.length + (peers.length === 1 ? ' node' : ' nodes') + ': ' + (states.alive || 0) + ' alive';
    for (const k of Object.keys(states).sort()) if (k !== 'alive') line += ', ' + states[k] + ' ' + k;
    byId('fleet-count').textContent = line;

    const regions = {};
    for (const p of peers) (regions[p.region || '(none)'] = regions[p.region || '(none)'] || []).push(p);
    const out = [];
    for (const r of sortedKeys(regions)) {
      const ps = regions[r].sort((a, b) => str(a.name).localeCompare(str(b.name), 'en', { numeric: true }));
      out.push(h('div', { class: 'region', 'data-region': r },
        h('h3', null, r, h('span', { class: 'muted' }, ' ' + ps.length + (ps.length === 1 ? ' node' : ' nodes'))),
        table(null, ['name', 'zone', 'org', { t: 'capacity', n: 1 }, 'state', 'tests'], ps.map((p) =>
          h('tr', { 'data-node': str(p.name) },
            h('td', null, str(p.name), p.self ? h('span', { class: 'badge' }, 'this node') : null),
            td(str(p.zone) || DASH), td(str(p.org) || DASH),
            tdn(p.capacity === undefined ? DASH : fmtRate(p.capacity)),
            h('td', { class: 'state', 'data-state': str(p.state) }, str(p.state) || 'unknown'),
            td(arr(testsOf[p.name]).join(', ') || DASH, 'tests'))))));
    }
    put(byId('fleet-regions'), ...out);

    const tests = arr(f.tests).filter(isObj).slice()
      .sort((a, b) => str(b.created).localeCompare(str(a.created)) || str(a.id).localeCompare(str(b.id)));
    put(byId('tests-wrap'), table('tests', ['id', 'name', 'state', 'submitter', 'created', { t: 'nodes', n: 1 }],
      tests.map((t) => {
        const go = () => { location.hash = 'test=' + encodeURIComponent(str(t.id)); };
        return h('tr', {
          'data-test': str(t.id), class: 'clickable' + (t.id === S.selected ? ' selected' : ''), tabindex: '0',
          title: 'show this test', onclick: go, onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); go(); } },
        },
        td(str(t.id), 'mono'), td(str(t.name)),
        h('td', { class: 'state', 'data-state': str(t.state) }, str(t.state), t.reason ? h('span', { class: 'muted' }, ' (' + t.reason + ')') : null),
        td(str(t.submitter) || DASH), td(fmtTime(t.created)), tdn(fmtInt(t.nodes)));
      }), 'No tests yet.'));

    const self = f.self ? 'node ' + f.self : '';
    byId('subtitle').textContent = 'live dashboard' + (self ? ' \u00b7 ' + self : '');
    byId('conn').textContent = f.time ? 'updated ' + fmtTime(f.time) : '';
  }

  // ---- charts -------------------------------------------------------------

  const CHART_ORDER = ['rate', 'latency', 'errors', 'region', 'region-latency', 'node', 'observed'];

  function dashImage(s) {
    try {
      const c = document.createElement('canvas');
      c.width = 56; c.height = 20;
      const x = c.getContext('2d');
      x.strokeStyle = s.color; x.lineWidth = (s.width || 1.5) * 2;
      x.setLineDash((s.dash || []).map((d) => d * 2));
      x.lineCap = s.cap || 'butt';
      x.beginPath(); x.moveTo(0, 10); x.lineTo(56, 10); x.stroke();
      return c.toDataURL();
    } catch (e) {
      return '';
    }
  }

  // The legend's markers show each series' own dash pattern.
  function legendMarkers(u, series) {
    const rows = u.root.querySelectorAll('.u-legend .u-series');
    series.forEach((s, i) => {
      const row = rows[i + 1];
      const m = row && row.querySelector('.u-marker');
      if (!m) return;
      const img = dashImage(s);
      m.style.border = 'none';
      m.style.width = '28px';
      m.style.height = '10px';
      m.style.background = img ? 'url("' + img + '") center / 28px 10px no-repeat' : s.color;
      row.setAttribute('data-dash', (s.dash || []).join(' ') || 'solid');
    });
  }

  // drawMarks draws the profile's stages and the test's events on a chart.
  function drawMarks(u, marks) {
    if (!marks || !marks.length) return;
    const xs = u.scales.x;
    if (xs.min === null || xs.max === null || xs.min === undefined) return;
    const ctx = u.ctx;
    const pr = window.devicePixelRatio || 1;
    const bb = u.bbox;
    ctx.save();
    ctx.beginPath();
    ctx.rect(bb.left, bb.top, bb.width, bb.height);
    ctx.clip();
    ctx.font = Math.round(10 * pr) + 'px system-ui, -apple-system, "Segoe UI", sans-serif';
    ctx.textBaseline = 'top';
    ctx.textAlign = 'left';
    let si = 0, ei = 0;
    for (const m of marks) {
      if (m.t < xs.min || m.t > xs.max) continue;
      const x = Math.round(u.valToPos(m.t, 'x', true)) + 0.5;
      const stage = m.kind === 'stage';
      ctx.strokeStyle = stage ? 'rgba(90,96,110,0.55)' : 'rgba(110,60,150,0.8)';
      ctx.lineWidth = pr;
      ctx.setLineDash(stage ? [] : [5 * pr, 4 * pr]);
      ctx.beginPath(); ctx.moveTo(x, bb.top); ctx.lineTo(x, bb.top + bb.height); ctx.stroke();
      ctx.setLineDash([]);
      let label = m.label;
      if (label.length > 40) label = label.slice(0, 39) + '\u2026';
      const w = ctx.measureText(label).width + 6 * pr;
      const lh = 13 * pr;
      let y;
      if (stage) { y = bb.top + 2 * pr + (si++ % 2) * lh; } else { y = bb.top + bb.height - (1 + (ei++ % 3)) * lh - 2 * pr; }
      let lx = x + 2 * pr;
      if (lx + w > bb.left + bb.width) lx = Math.max(bb.left, x - 2 * pr - w);
      ctx.fillStyle = 'rgba(255,255,255,0.85)';
      ctx.fillRect(lx, y, w, lh);
      ctx.fillStyle = stage ? '#3c4250' : '#5a2d82';
      ctx.fillText(label, lx + 3 * pr, y + 1.5 * pr);
    }
    ctx.restore();
  }

  function chartWidth(c) {
    const w = c.body.clientWidth || (c.wrap.clientWidth ? c.wrap.clientWidth - 24 : 0);
    return Math.max(280, Math.min(w || 600, 900));
  }

  // updateChart draws (or, with spec null, removes) one chart. spec: {title,
  // unit, fmt, x: [...], series: [{label, values, color, dash, width}]}.
  function updateChart(id, spec, marks) {
    let c = S.charts[id];
    if (!spec) {
      if (c) { if (c.u) c.u.destroy(); c.wrap.remove(); delete S.charts[id]; }
      return;
    }
    if (!c) {
      const body = h('div', { class: 'chart-body' });
      const wrap = h('div', { class: 'chart', id: id + '-chart' }, h('h4', { class: 'chart-title' }, spec.title), body);
      const box = byId('charts');
      const after = CHART_ORDER.slice(CHART_ORDER.indexOf(id) + 1).map((k) => S.charts[k]).find(Boolean);
      box.insertBefore(wrap, after ? after.wrap : null);
      c = S.charts[id] = { wrap, body, u: null, key: '' };
    }
    c.marks = marks;
    const data = [spec.x].concat(spec.series.map((s) => s.values));
    const key = spec.series.map((s) => s.label + ':' + s.color + ':' + (s.dash || []).join('.')).join('|');
    const labels = spec.series.map((s) => s.label);
    c.wrap.setAttribute('data-points', String(spec.x.length));
    c.wrap.setAttribute('data-series', labels.join(','));
    c.wrap.classList.toggle('nodata', !spec.x.length);
    if (c.u && c.key === key) {
      c.u.setData(data);
      return;
    }
    if (c.u) c.u.destroy();
    const fmt = spec.fmt || fmtFloat;
    const opts = {
      width: chartWidth(c),
      height: 220,
      scales: {
        x: { time: false },
        y: { range: (u, min, max) => [Math.min(0, num(min) || 0), num(max) !== null && max > 0 ? max * 1.2 : 1] },
      },
      axes: [
        { label: 'seconds since start', labelSize: 18, size: 36, incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400], values: (u, sp) => sp.map((v) => v + 's') },
        { label: spec.unit, labelSize: 18, size: 56, values: (u, sp) => sp.map((v) => fmtFloat(v)) },
      ],
      series: [{ label: 'second', value: (u, v) => (v === null || v === undefined ? DASH : v + 's') }].concat(spec.series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: s.width || 1.5,
        dash: s.dash && s.dash.length ? s.dash : undefined,
        spanGaps: !!s.spanGaps,
        cap: s.cap || undefined,
        points: { show: spec.x.length <= 2 },
        value: (u, v) => (v === null || v === undefined ? DASH : fmt(v)),
      }))),
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      hooks: { draw: [(u) => drawMarks(u, c.marks)] },
    };
    c.u = new uPlot(opts, data, c.body);
    c.key = key;
    legendMarkers(c.u, spec.series);
  }

  function destroyCharts() {
    for (const id of Object.keys(S.charts)) updateChart(id, null);
  }

  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const id of Object.keys(S.charts)) {
        const c = S.charts[id];
        if (c.u) c.u.setSize({ width: chartWidth(c), height: 220 });
      }
    }, 150);
  });

  // align joins series keyed by second into one x axis (sorted), with null
  // where a series has no value.
  function align(maps) {
    const xs = new Set();
    for (const m of maps) for (const k of m.keys()) xs.add(k);
    const x = Array.from(xs).sort((a, b) => a - b);
    return { x, ys: maps.map((m) => x.map((t) => (m.has(t) ? m.get(t) : null))) };
  }
  function pointMap(points, field) {
    const m = new Map();
    for (const p of arr(points)) {
      if (!isObj(p) || num(p.t) === null) continue;
      const v = num(p[field]);
      m.set(p.t, v);
    }
    return m;
  }

  function chartSpecs(model) {
    const rep = model.report;
    let points = arr(rep && rep.series);
    if (!points.length && model.status) {
      // No report yet: the per-second status numbers.
      points = arr(model.status.seconds).filter(isObj).map((s) => ({
        t: s.t, target: s.target, achieved: s.achieved, requests: null,
        p50_ms: s.p50_ms, p95_ms: s.p95_ms, p99_ms: s.p99_ms, errors: s.errors, dropped: s.dropped, by_node: s.by_node,
      }));
    }
    const base = model.baseline ? arr(obj(model.baseline.results).series) : [];
    const specs = {};

    const rate = [
      { label: 'target', field: 'target', color: '#000000', dash: [8, 4], width: 1.5 },
      { label: 'achieved', field: 'achieved', color: '#0072B2', dash: [], width: 2 },
      { label: 'requests', field: 'requests', color: '#009E73', dash: [2, 3], width: 2 },
    ];
    {
      const maps = rate.map((s) => pointMap(points, s.field));
      if (!points.some((p) => num(p.requests) !== null)) { rate.pop(); maps.pop(); }
      if (base.length) {
        rate.push({ label: 'baseline achieved', color: '#CC79A7', dash: [0.1, 5], cap: 'round', width: 3, spanGaps: true });
        maps.push(pointMap(base, 'achieved'));
      }
      const a = align(maps);
      specs.rate = { title: 'Rate (arrivals/s)', unit: 'per second', fmt: fmtFloat, x: a.x, series: rate.map((s, i) => Object.assign({}, s, { values: a.ys[i] })) };
    }
    {
      const lat = [
        { label: 'p50', field: 'p50_ms', color: '#009E73', dash: [], width: 1.5 },
        { label: 'p95', field: 'p95_ms', color: '#0072B2', dash: [8, 4], width: 2 },
        { label: 'p99', field: 'p99_ms', color: '#D55E00', dash: [2, 3], width: 2 },
      ];
      const maps = lat.map((s) => pointMap(points, s.field));
      if (base.length) {
        lat.push({ label: 'baseline p95', color: '#CC79A7', dash: [0.1, 5], cap: 'round', width: 3, spanGaps: true });
        maps.push(pointMap(base, 'p95_ms'));
      }
      const a = align(maps);
      specs.latency = { title: 'Latency (ms)', unit: 'ms', fmt: fmtMs, x: a.x, series: lat.map((s, i) => Object.assign({}, s, { values: a.ys[i] })) };
    }
    {
      const er = [
        { label: 'errors', field: 'errors', color: '#D55E00', dash: [], width: 2 },
        { label: 'dropped', field: 'dropped', color: '#E69F00', dash: [8, 4], width: 2 },
      ];
      const a = align(er.map((s) => pointMap(points, s.field)));
      specs.errors = { title: 'Errors and dropped arrivals (per point)', unit: 'count', fmt: fmtFloat, x: a.x, series: er.map((s, i) => Object.assign({}, s, { values: a.ys[i] })) };
    }
    const many = (title, unit, fmt, m, field) => {
      const names = sortedKeys(m).filter((k) => arr(m[k]).length);
      if (!names.length) return null;
      const a = align(names.map((n) => pointMap(m[n], field)));
      return { title, unit, fmt, x: a.x, series: names.map((n, i) => Object.assign({ label: n, values: a.ys[i], width: 1.75 }, style(i))) };
    };
    const byRegion = obj(rep && rep.series_by_region);
    specs.region = many('Achieved rate by region (arrivals/s)', 'per second', fmtFloat, byRegion, 'achieved');
    specs['region-latency'] = many('p95 latency by region (ms)', 'ms', fmtMs, byRegion, 'p95_ms');
    let byNode = obj(rep && rep.series_by_node);
    if (!Object.keys(byNode).length && !(rep && arr(rep.series).length)) {
      // Live, before a report: the status seconds' by_node.
      const m = {};
      for (const p of points) for (const n of Object.keys(obj(p.by_node))) (m[n] = m[n] || []).push({ t: p.t, achieved: p.by_node[n] });
      byNode = m;
    }
    specs.node = many('Achieved rate by node (arrivals/s)', 'per second', fmtFloat, byNode, 'achieved');

    const obs = arr(obj(rep && rep.observe).series).filter((s) => isObj(s) && isObj(s.values) && Object.keys(s.values).length);
    if (obs.length) {
      const maps = obs.map((s) => {
        const m = new Map();
        for (const k of Object.keys(s.values)) { const t = Number(k); if (isFinite(t)) m.set(t, num(s.values[k])); }
        return m;
      });
      const a = align(maps);
      // Series of very different sizes (a queue of thousands, replicas in
      // tens) would flatten each other on one axis: then each is drawn as a
      // share of its own maximum, and its label says the maximum.
      const tops = a.ys.map((ys) => Math.max(0, ...ys.filter((v) => num(v) !== null)));
      const big = Math.max(...tops), small = Math.min(...tops.filter((t) => t > 0));
      const scaled = obs.length > 1 && small > 0 && big / small > 10;
      specs.observed = {
        title: scaled ? 'Observed system (each series as % of its maximum)' : 'Observed system',
        unit: scaled ? '% of max' : 'value', fmt: fmtFloat, x: a.x,
        series: obs.map((s, i) => Object.assign({
          label: (str(s.name) || 'series ' + (i + 1)) + (scaled ? ' (max ' + fmtFloat(tops[i]) + ')' : ''),
          values: scaled ? a.ys[i].map((v) => (num(v) === null || !tops[i] ? v : 100 * v / tops[i])) : a.ys[i],
          width: 1.75,
        }, style(i))),
      };
    } else {
      specs.observed = null;
    }
    return specs;
  }

  function marksOf(model) {
    const marks = [];
    const stages = arr(model.report && model.report.stages).length ? model.report.stages : arr(obj(model.status && model.status.report).stages);
    for (const s of arr(stages)) {
      if (!isObj(s) || num(s.start) === null) continue;
      marks.push({ t: s.start, kind: 'stage', label: ARROW + ' ' + shortNum(num(s.to) === null ? 0 : s.to) + '/s' });
    }
    for (const e of arr(model.status && model.status.events)) {
      if (!isObj(e) || num(e.t) === null) continue;
      marks.push({ t: e.t, kind: 'event', label: str(e.text) || str(e.kind) });
    }
    return marks;
  }

  // ---- the test view ----------------------------------------------------

  const TOTALS = [
    ['requests', 'requests', ['requests'], fmtInt],
    ['arrivals', 'arrivals', ['arrivals'], fmtInt],
    ['errors', 'errors', ['errors'], fmtInt],
    ['dropped', 'dropped', ['dropped'], fmtInt],
    ['planned', 'planned', ['planned'], fmtInt],
    ['error_rate', 'error rate', ['error_rate'], fmtPct],
    ['rate.achieved', 'achieved rate', ['rate', 'achieved'], fmtRate],
    ['rate.target', 'target rate', ['rate', 'target'], fmtRate],
    ['latency.p50', 'latency p50', ['latency_ms', 'p50'], fmtMs],
    ['latency.p95', 'latency p95', ['latency_ms', 'p95'], fmtMs],
    ['latency.p99', 'latency p99', ['latency_ms', 'p99'], fmtMs],
    ['latency.max', 'latency max', ['latency_ms', 'max'], fmtMs],
  ];
  function pick(o, path) {
    let v = o;
    for (const k of path) v = isObj(v) ? v[k] : undefined;
    return num(v);
  }

  // model is what the test view draws: {status, report, baseline, source}.
  function testModel() {
    if (REPORT) {
      const d = obj(S.data);
      const st = isObj(d.status) ? d.status : null;
      const b = isObj(d.baseline) && isObj(d.baseline.results) ? { results: d.baseline.results, status: isObj(d.baseline.status) ? d.baseline.status : null } : null;
      return { status: st, report: isObj(d.results) ? d.results : {}, baseline: b, source: 'merged results' };
    }
    const st = S.status;
    if (!st) return null;
    const r = S.results[S.selected];
    if (TERMINAL.has(st.state) && r && isObj(r.data)) return { status: st, report: r.data, source: 'merged results' };
    if (isObj(st.report)) return { status: st, report: st.report, source: TERMINAL.has(st.state) ? 'final report (merged results loading)' : 'live report' };
    return { status: st, report: null, source: 'per-second status' };
  }

  function meta(label, value, attrs) {
    return [h('dt', null, label), h('dd', attrs || null, value)];
  }

  function renderTest() {
    const head = byId('test-head');
    const tail = byId('test-tail');
    if (!REPORT && !S.selected) {
      destroyCharts();
      put(head, h('p', { class: 'muted', id: 'test-none' }, 'No test selected: click a test above, or start one; a running test is shown as it runs.'));
      put(tail);
      return;
    }
    const model = testModel();
    if (!model) {
      destroyCharts();
      put(head, h('h2', { id: 'test-title' }, 'Test ' + S.selected),
        h('p', { class: 'muted', id: 'test-none' }, S.fleet && !testKnown(S.selected) ? 'This node does not know the test ' + S.selected + '.' : 'Waiting for the test\u2019s status' + '\u2026'));
      put(tail);
      return;
    }
    const st = model.status || {};
    const rep = model.report || {};
    const fleetRep = obj(st.report);
    const id = str(rep.id || st.id || S.selected);
    const name = str(rep.name || st.name);
    const stateText = REPORT ? str(rep.status || st.state) : str(st.state);

    // Metadata.
    const nodes = arr(st.node_states).length ? arr(st.node_states) : arr(rep.nodes).length ? arr(rep.nodes) : arr(fleetRep.nodes);
    let skew = num(rep.start_skew_ms);
    if (skew === null) skew = num(fleetRep.start_skew_ms);
    if (skew === null && nodes.length) skew = Math.max(...nodes.map((n) => num(obj(n).start_skew_ms) || 0));
    const del = obj(rep.delivery);
    const dl = h('dl', { id: 'test-meta', class: 'meta' },
      meta('name', name || DASH),
      meta('id', id || DASH, { class: 'mono' }),
      meta(REPORT ? 'result' : 'state', stateText || DASH, { id: 'test-state', class: 'state', 'data-state': stateText }),
      REPORT && st.state ? meta('state', str(st.state), { class: 'state', 'data-state': str(st.state) }) : null,
      !REPORT && TERMINAL.has(st.state) && rep.status ? meta('result', str(rep.status), { id: 'test-result', class: 'state', 'data-state': str(rep.status) }) : null,
      st.reason ? meta('reason', str(st.reason)) : null,
      meta('submitter', str(st.submitter) || DASH),
      meta('created', fmtTime(st.created)),
      meta('target', str(rep.target || st.target) || DASH, { class: 'mono' }),
      meta('start', fmtTime(st.start)),
      meta('duration', fmtDur(num(st.duration_s) !== null && st.duration_s > 0 ? st.duration_s : rep.duration_s)),
      meta('scheduler', str(st.scheduler) || DASH),
      meta('plan epoch', st.epoch === undefined ? DASH : str(st.epoch)),
      meta('nodes', nodes.length ? String(nodes.length) : (st.nodes !== undefined ? str(st.nodes) : DASH)),
      meta('largest start skew', skew === null ? DASH : fmtMs(skew)),
      meta('delivery', isObj(rep.delivery)
        ? [fmtPct(del.ratio) + ' of planned', del.complete === false ? h('span', { class: 'bad' }, ' (incomplete: below ' + fmtPct(del.min_delivered) + ')') : '',
          num(del.undelivered) ? ', ' + fmtInt(del.undelivered) + ' undelivered' : '',
          num(del.missing_seconds) ? ', ' + fmtInt(del.missing_seconds) + ' missing seconds' : '']
        : DASH, { id: 'delivery' }),
      arr(rep.missing_nodes).length ? meta('missing nodes', arr(rep.missing_nodes).join(', '), { id: 'missing-nodes', class: 'bad' }) : null,
      arr(rep.from_replicas).length ? meta('from replicas', arr(rep.from_replicas).join(', ')) : null,
      meta('numbers from', model.source + (num(rep.answered) !== null ? ' (' + rep.answered + ' nodes answered)' : '')));

    const flags = [];
    if (rep.failed) flags.push(h('p', { class: 'flag bad', 'data-flag': 'failed' }, 'Failed: ' + str(rep.failed)));
    if (rep.aborted) flags.push(h('p', { class: 'flag bad', 'data-flag': 'aborted' }, 'Aborted by threshold: ' + str(rep.aborted)));
    if (rep.interrupted) flags.push(h('p', { class: 'flag warn', 'data-flag': 'interrupted' }, 'Interrupted: the test was stopped before its end.'));
    if (rep.incomplete) flags.push(h('p', { class: 'flag warn', 'data-flag': 'incomplete' }, 'Incomplete: some results are missing; the numbers cover less than what ran.'));
    const why = arr(del.why);
    if (why.length) flags.push(h('div', { class: 'flag note', 'data-flag': 'delivery' }, 'Delivery: ', h('ul', { id: 'delivery-why' }, why.map((w) => h('li', null, str(w))))));
    const excl = obj(st.excluded);
    if (Object.keys(excl).length) flags.push(h('p', { class: 'flag note', 'data-flag': 'excluded' }, 'Excluded: ' + sortedKeys(excl).map((k) => k + ' (' + str(excl[k]) + ')').join(', ')));
    const r = !REPORT && S.results[S.selected];
    if (r && r.error && TERMINAL.has(st.state)) flags.push(h('p', { class: 'flag ' + (st.state === 'failed' ? 'note' : 'warn'), id: 'results-error' }, 'Could not load the merged results: ' + r.error));

    // Stop (live, while it can run).
    let controls = null;
    if (!REPORT) {
      const sr = S.stop[id];
      controls = h('div', { class: 'controls' },
        STOPPABLE.has(st.state) ? h('button', { id: 'stop', type: 'button', class: 'stop', disabled: sr && sr.pending ? true : null, onclick: () => stopTest(id) }, 'Stop test') : null,
        sr ? h('span', { id: 'stop-result', class: sr.error ? 'bad' : 'muted' }, sr.error ? 'stop failed: ' + sr.error : sr.text) : null);
    }

    // Totals.
    const totals = table('totals', ['', { t: 'value', n: 1 }], TOTALS.map(([k, label, path, f]) => {
      const v = pick(rep, path);
      return h('tr', { 'data-k': k }, h('th', { scope: 'row' }, label), tdn(f(v), { 'data-k': k, 'data-v': v === null ? '' : String(v) }));
    }));

    // Thresholds.
    const ths = arr(rep.thresholds).filter(isObj);
    const thresholds = table('thresholds', ['expression', 'result', 'abort', 'error'], ths.map((t) =>
      h('tr', { 'data-expr': str(t.expr), class: t.pass ? 'pass' : 'fail' },
        td(str(t.expr), 'mono'),
        h('td', { class: 'verdict ' + (t.pass ? 'pass' : 'fail') }, t.pass ? 'PASS' : 'FAIL'),
        td(t.abort ? 'abort' : ''), td(str(t.error), t.error ? 'bad' : null))), 'No thresholds.');

    put(head,
      h('div', { class: 'test-title-row' }, h('h2', { id: 'test-title' }, name || id || 'Test', id && name ? h('span', { class: 'muted mono' }, ' ' + id) : null), controls),
      h('div', { class: 'cols' },
        h('div', { class: 'col' }, dl, section('thresholds-section', 'Thresholds', thresholds)),
        h('div', { class: 'col' }, flags, section('totals-section', 'Totals', totals))),
      model.baseline ? baselineSection(rep, model.baseline) : null);

    // Charts.
    const specs = chartSpecs(model);
    const marks = marksOf(model);
    for (const cid of CHART_ORDER) updateChart(cid, specs[cid], marks);

    // Below the charts.
    put(tail,
      section('nodes-section', 'Nodes', table('nodes', ['node', 'region', { t: 'rate', n: 1 }, 'done', 'stopped', { t: 'last second', n: 1 }, { t: 'start skew', n: 1 }],
        nodes.filter(isObj).map((n) => h('tr', { 'data-test-node': str(n.name) },
          td(str(n.name)), td(str(n.region) || DASH), tdn(fmtRate(n.rate)), td(n.done ? 'yes' : 'no'), td(str(n.stopped) || DASH, n.stopped ? 'warn' : null),
          tdn(num(n.last_second) === null || n.last_second < 0 ? DASH : str(n.last_second)), tdn(fmtMs(n.start_skew_ms)))), 'No node states.')),
      stepBars(rep.by_step),
      h('div', { class: 'breakdowns' },
        breakdown('by-step', 'By step', rep.by_step),
        breakdown('by-region', 'By region', rep.by_region),
        breakdown('by-node', 'By node', rep.by_node)),
      observedSection(rep.observe),
      errorsSection(rep),
      exemplarsSection(rep.exemplars));

    document.title = 'Loadswarm' + (name ? ': ' + name : '') + (stateText ? ' (' + stateText + ')' : '');
    S.testDone = true;
  }

  // stepBars draws each step's p50, p95 and p99 as bars on one scale: the
  // quantiles differ by fill pattern and label, and each bar says its value.
  function stepBars(m) {
    const keys = sortedKeys(m).filter((k) => num(pick(obj(m[k]), ['requests'])));
    if (!keys.length) return null;
    const top = Math.max(...keys.map((k) => num(pick(obj(m[k]), ['latency_ms', 'p99'])) || 0), 1e-9);
    const rows = [];
    for (const k of keys) {
      for (const q of ['p50', 'p95', 'p99']) {
        const v = num(pick(obj(m[k]), ['latency_ms', q])) || 0;
        rows.push(h('div', { class: 'bar-row', 'data-step': k, 'data-q': q },
          h('span', { class: 'bar-label' }, q === 'p50' ? k : ''),
          h('span', { class: 'bar-q' }, q),
          h('span', { class: 'bar-track' }, h('span', { class: 'bar bar-' + q, style: 'width:' + (100 * v / top).toFixed(2) + '%' })),
          h('span', { class: 'bar-value n' }, fmtMs(v))));
      }
    }
    return section('step-bars-section', 'Latency by step', h('div', { class: 'bars', id: 'step-bars', 'data-steps': keys.join(',') }, rows));
  }

  function breakdown(id, title, m) {
    const keys = sortedKeys(m);
    if (!keys.length) return null;
    return section(id + '-section', title, table(id, ['', { t: 'requests', n: 1 }, { t: 'rate', n: 1 }, { t: 'errors', n: 1 }, { t: 'p50', n: 1 }, { t: 'p95', n: 1 }, { t: 'p99', n: 1 }],
      keys.map((k) => {
        const s = obj(m[k]);
        return h('tr', { 'data-key': k }, h('th', { scope: 'row' }, k), tdn(fmtInt(s.requests)), tdn(fmtRate(pick(s, ['rate', 'achieved']))),
          tdn([fmtInt(s.errors), num(s.errors) ? h('span', { class: 'muted' }, ' ' + fmtPct(s.error_rate)) : null]),
          tdn(fmtMs(pick(s, ['latency_ms', 'p50']))), tdn(fmtMs(pick(s, ['latency_ms', 'p95']))), tdn(fmtMs(pick(s, ['latency_ms', 'p99']))));
      })));
  }

  function baselineSection(rep, b) {
    const br = obj(b.results);
    const bs = obj(b.status);
    const rows = TOTALS.map(([k, label, path, f]) => {
      const a = pick(rep, path), c = pick(br, path);
      let ch = null;
      if (a !== null && c !== null && c !== 0) ch = (a - c) / Math.abs(c) * 100;
      const chText = ch === null ? (a !== null && c === 0 && a !== 0 ? 'new' : DASH) : (ch > 0 ? '+' : '') + ch.toFixed(1) + '%';
      return h('tr', { 'data-k': k }, h('th', { scope: 'row' }, label),
        tdn(f(a), { class: 'n run', 'data-v': a === null ? '' : String(a) }),
        tdn(f(c), { class: 'n base', 'data-v': c === null ? '' : String(c) }),
        tdn(chText, { class: 'n change', 'data-v': ch === null ? '' : String(ch) }));
    });
    return section('baseline', 'Baseline',
      h('p', { id: 'baseline-id' }, 'Compared with ', h('strong', null, str(br.name || bs.name) || 'a baseline'),
        ' ', h('span', { class: 'mono' }, str(br.id || bs.id)),
        br.status ? ' (' + str(br.status) + ')' : '', bs.created ? ', created ' + fmtTime(bs.created) : '',
        '. On the rate and latency charts it is drawn dotted, aligned by second since start.'),
      table('baseline-totals', ['', { t: 'this run', n: 1 }, { t: 'baseline', n: 1 }, { t: 'change', n: 1 }], rows));
  }

  function observedSection(o) {
    if (!isObj(o)) return null;
    const series = arr(o.series).filter(isObj);
    const changes = arr(o.load_changes).filter(isObj);
    const lag = obj(o.scale_lag);
    const rec = obj(o.recovery);
    const lim = obj(o.recovery_limits_ms);
    if (!series.length && !changes.length && !Object.keys(rec).length) return null;
    const secOrNever = (v, never) => (num(v) === null ? never : fmtSec(v));
    return section('observed-section', 'Observed system',
      changes.length ? h('p', { id: 'load-changes' }, 'Load changes: ', changes.map((c, i) =>
        (i ? '; ' : '') + 'at ' + fmtSec(c.t) + ' ' + shortNum(c.from) + ARROW + shortNum(c.to) + '/s (until ' + fmtSec(c.end) + ')')) : null,
      h('h4', null, 'Series'),
      table('observed', ['series', { t: 'first', n: 1 }, { t: 'min', n: 1 }, { t: 'max', n: 1 }, { t: 'last', n: 1 }, { t: 'samples', n: 1 }, 'gaps', 'moved after each change', { t: 'scale lag', n: 1 }],
        series.map((s) => h('tr', { 'data-key': str(s.name) },
          th(str(s.name)), tdn(fmtFloat(s.first)), tdn(fmtFloat(s.min)), tdn(fmtFloat(s.max)), tdn(fmtFloat(s.last)), tdn(fmtInt(s.samples)),
          td([fmtInt(s.gaps), arr(s.gap_reasons).length ? h('span', { class: 'muted' }, ' (' + arr(s.gap_reasons).join('; ') + ')') : null]),
          td(arr(s.moved).map((m) => secOrNever(m, 'no')).join(', ') || DASH),
          tdn(Object.prototype.hasOwnProperty.call(lag, s.name) ? secOrNever(lag[s.name], 'never moved') : DASH, { 'data-v': num(lag[s.name]) === null ? '' : String(lag[s.name]) }))), 'No observed series.'),
      Object.keys(rec).length ? h('h4', null, 'Recovery after the main change (the largest rise)') : null,
      Object.keys(rec).length ? table('recovery', ['quantile', { t: 'limit', n: 1 }, { t: 'recovery', n: 1 }],
        sortedKeys(rec).map((q) => h('tr', { 'data-key': q }, th(q), tdn(fmtMs(lim[q])),
          tdn(num(rec[q]) === null ? 'never came back' : rec[q] === 0 ? 'never went over' : fmtSec(rec[q]), { 'data-v': num(rec[q]) === null ? '' : String(rec[q]) })))) : null);
  }
  const th = (text) => h('th', { scope: 'row' }, text);

  function errorsSection(rep) {
    const byClass = obj(rep.errors_by_class);
    const samples = obj(rep.error_samples);
    const classes = Array.from(new Set(sortedKeys(byClass).concat(sortedKeys(samples)))).sort();
    if (!classes.length) return null;
    return section('errors-section', 'Errors',
      h('div', { id: 'error-samples' }, classes.map((c) => h('div', { class: 'error-class', 'data-class': c },
        h('h4', null, h('span', { class: 'mono' }, c), byClass[c] !== undefined ? h('span', { class: 'muted' }, ' ' + fmtInt(byClass[c]) + ' errors') : null),
        arr(samples[c]).length ? h('ul', { class: 'samples' }, arr(samples[c]).map((m) => h('li', { class: 'mono' }, str(m)))) : null))));
  }

  function exemplarsSection(ex) {
    const rows = arr(ex).filter(isObj);
    if (!rows.length) return null;
    const failed = (e) => !!e.error || (num(e.status) !== null && e.status >= 500);
    const byLat = (a, b) => (num(b.latency_ms) || 0) - (num(a.latency_ms) || 0);
    const slow = rows.filter((e) => !failed(e)).sort(byLat);
    const bad = rows.filter(failed).sort(byLat);
    const CAP = 25;
    const tbl = (id, list) => table(id, [{ t: 'second', n: 1 }, 'region', 'node', 'step', 'trace id', { t: 'latency', n: 1 }, 'status / error', 'sampled'],
      list.slice(0, CAP).map((e) => h('tr', { 'data-trace': str(e.trace_id) },
        tdn(str(e.t)), td(str(e.region) || DASH), td(str(e.node) || DASH), td(str(e.step) || DASH), td(str(e.trace_id), 'mono trace'),
        tdn(fmtMs(e.latency_ms)), td([e.status ? str(e.status) : '', e.status && e.error ? ' ' : '', e.error ? str(e.error) : ''].join('') || DASH, failed(e) ? 'bad' : null),
        td(e.sampled ? 'yes' : 'no'))), 'None.');
    const more = (list) => (list.length > CAP ? h('p', { class: 'muted' }, (list.length - CAP) + ' more not shown.') : null);
    return section('exemplars', 'Traces to look up',
      h('h4', null, 'Slowest'), tbl('exemplars-slowest', slow), more(slow),
      h('h4', null, 'Failed'), tbl('exemplars-failed', bad), more(bad));
  }

  // ---- live: stream, selection, stop ---------------------------------------

  function hashTest() {
    const m = /^#test=(.+)$/.exec(location.hash || '');
    if (!m) return null;
    try { return decodeURIComponent(m[1]); } catch (e) { return m[1]; }
  }

  function select(id, fromHash) {
    if (id === S.selected) { S.fromHash = fromHash; return; }
    S.selected = id;
    S.fromHash = fromHash;
    S.status = null;
    S.testDone = false;
    destroyCharts();
    connect();
  }

  function banner(show) {
    const b = byId('banner');
    if (b) b.hidden = !show;
    document.body.classList.toggle('disconnected', show);
  }

  function connect() {
    if (S.es) { S.es.close(); S.es = null; }
    clearTimeout(S.retry);
    // A test this node does not know: stream the fleet alone, and say so.
    const streamed = S.selected && S.selected !== S.unknown ? S.selected : null;
    const url = streamed ? '/v1/stream?test=' + encodeURIComponent(streamed) : '/v1/stream';
    let es;
    try { es = new EventSource(url); } catch (e) { banner(true); S.retry = setTimeout(connect, 3000); return; }
    S.es = es;
    es.addEventListener('fleet', (ev) => { if (es === S.es) onFleet(parse(ev.data)); });
    es.addEventListener('test', (ev) => { if (es === S.es) onTest(parse(ev.data)); });
    es.onopen = () => { if (es === S.es) banner(false); };
    es.onerror = () => {
      if (es !== S.es) return;
      banner(true);
      // EventSource retries by itself unless the server refused it; a
      // refusal with a test selected is most likely a test this node does
      // not know (404): watch the fleet without it at once.
      if (es.readyState === EventSource.CLOSED) {
        if (streamed && S.unknown !== streamed) { S.unknown = streamed; connect(); return; }
        S.retry = setTimeout(() => { if (es === S.es) connect(); }, 3000);
      }
    };
  }

  function parse(s) {
    try { return JSON.parse(s); } catch (e) { return null; }
  }

  function onFleet(f) {
    if (!isObj(f)) return;
    banner(false);
    S.fleet = f;
    if (S.unknown && S.unknown === S.selected && testKnown(S.selected)) {
      S.unknown = null; // it has arrived: stream it
      connect();
    }
    if (!S.fromHash) {
      // Nothing asked for: show the most recent running test, if any.
      const running = arr(f.tests).filter((t) => isObj(t) && t.state === 'running')
        .sort((a, b) => str(b.created).localeCompare(str(a.created)));
      if (running.length && running[0].id !== S.selected) select(running[0].id, false);
    }
    renderFleet();
    S.fleetDone = true;
    if (S.selected && !S.status) renderTest();
    setReady();
  }

  function onTest(st) {
    if (!isObj(st) || (st.id && st.id !== S.selected)) return;
    banner(false);
    S.status = st;
    const id = S.selected;
    const r = S.results[id];
    if (TERMINAL.has(st.state) && (!r || (r.error && Date.now() - r.at > 10000))) fetchResults(id);
    renderTest();
    setReady();
  }

  function fetchResults(id) {
    S.results[id] = { pending: true };
    fetch('/v1/tests/' + encodeURIComponent(id) + '/results?by=region,node,step&exemplars=1', { headers: { Accept: 'application/json' } })
      .then((res) => res.text().then((t) => ({ ok: res.ok, code: res.status, j: parse(t) })))
      .then(({ ok, code, j }) => {
        if (ok && isObj(j)) S.results[id] = { data: j };
        else S.results[id] = { error: (isObj(j) && j.error) ? str(j.error) : 'HTTP ' + code, at: Date.now() };
      })
      .catch((e) => { S.results[id] = { error: str(e && e.message ? e.message : e), at: Date.now() }; })
      .then(() => { if (S.selected === id && S.status) { renderTest(); setReady(); } });
  }

  function stopTest(id) {
    if (S.stop[id] && S.stop[id].pending) return;
    S.stop[id] = { pending: true, text: 'stopping' + '\u2026' };
    renderTest();
    fetch('/v1/tests/' + encodeURIComponent(id), { method: 'DELETE' })
      .then((res) => res.text().then((t) => ({ ok: res.ok, code: res.status, j: parse(t) })))
      .then(({ ok, code, j }) => {
        if (ok && isObj(j)) {
          S.stop[id] = { text: 'state: ' + str(j.state) + ', scope: ' + str(j.scope) + (j.note ? '. ' + str(j.note) : '') };
        } else {
          S.stop[id] = { error: (isObj(j) && j.error) ? str(j.error) : 'HTTP ' + code };
        }
      })
      .catch((e) => { S.stop[id] = { error: str(e && e.message ? e.message : e) }; })
      .then(() => { if (S.selected === id && S.status) renderTest(); setReady(); });
  }

  // ---- start ------------------------------------------------------------

  function start() {
    build();
    if (typeof uPlot === 'undefined') {
      put(byId('test-head'), h('p', { class: 'flag bad' }, 'The chart library did not load.'));
      window.uPlot = function () { return { setData() {}, destroy() {}, setSize() {}, root: document.createElement('div') }; };
    }
    if (REPORT) {
      S.data = parse(dataEl.textContent) || {};
      const d = S.data;
      byId('subtitle').textContent = 'report';
      byId('conn').textContent = 'generated ' + fmtTime(d.generated) + (d.generator ? ' by ' + str(d.generator) : '');
      renderTest();
      setReady();
      return;
    }
    const hs = hashTest();
    if (hs) { S.selected = hs; S.fromHash = true; }
    renderTest();
    connect();
    window.addEventListener('hashchange', () => {
      const id = hashTest();
      if (id) select(id, true);
      else { S.fromHash = false; select(null, false); }
      if (S.fleet) renderFleet();
      renderTest();
      setReady();
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
