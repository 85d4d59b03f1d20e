// sluicegate dashboard: reads /api/usage and draws the totals, the route table and one SVG
// line chart per figure. No library, no other origin: the gateway serves this file.
'use strict';

const WINDOWS = ['1h', '24h', '7d'];
const COLORS = ['#1f6feb', '#d1242f', '#1a7f37', '#9a6700', '#8250df', '#57606a'];
const SVG_NS = 'http://www.w3.org/2000/svg';
const CHARTS = [
  { id: 'requests', title: 'Requests', value: (p) => p.requests, fmt: (n) => String(Math.round(n)) },
  { id: 'cost', title: 'Cost (USD)', value: (p) => Number(p.cost_usd), fmt: (n) => '$' + n.toPrecision(3) },
  { id: 'p50-latency', title: 'p50 latency', value: (p) => p.p50_latency_ms, fmt: ms },
  { id: 'p95-latency', title: 'p95 latency', value: (p) => p.p95_latency_ms, fmt: ms },
  { id: 'p50-ttft', title: 'p50 time to first token', value: (p) => p.p50_ttft_ms, fmt: ms },
];

let loading = 0; // answers to older requests are ignored

function ms(v) { return v == null ? '–' : v.toFixed(1) + ' ms'; }
function money(text) { return '$' + text; }
function share(v) { return v == null ? 'n/a' : (v * 100).toFixed(1) + '%'; }
function routeName(r) { return r == null ? '(none)' : r; }
function byTestId(id) { return document.querySelector('[data-testid="' + id + '"]'); }
function setText(id, text) { byTestId(id).textContent = text; }

function el(name, attrs, parent, ns) {
  const node = ns ? document.createElementNS(ns, name) : document.createElement(name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

function initialWindow() {
  const w = new URLSearchParams(location.search).get('window');
  return WINDOWS.includes(w) ? w : '24h';
}

async function load(win) {
  const mine = ++loading;
  const status = document.getElementById('status');
  status.dataset.state = 'loading';
  status.textContent = 'loading…';
  for (const b of document.querySelectorAll('nav button')) {
    b.setAttribute('aria-pressed', String(b.dataset.window === win));
  }
  let body;
  try {
    const res = await fetch('/api/usage?window=' + encodeURIComponent(win), {
      credentials: 'same-origin', cache: 'no-store',
    });
    body = await res.json();
    if (!res.ok) throw new Error(body && body.error ? body.error.message : 'HTTP ' + res.status);
  } catch (e) {
    if (mine !== loading) return;
    status.dataset.state = 'error';
    status.textContent = 'error: ' + e.message;
    return;
  }
  if (mine !== loading) return;
  render(body);
  status.dataset.window = body.window;
  status.dataset.state = 'ready';
  status.textContent = 'last ' + body.window + ', as of ' + new Date(body.to_ms).toLocaleString();
}

function render(body) {
  const t = body.totals;
  setText('total-requests', String(t.requests));
  setText('total-errors', String(t.errors));
  setText('total-cost', money(t.cost_usd));
  setText('total-input-tokens', String(t.input_tokens));
  setText('total-output-tokens', String(t.output_tokens));
  setText('total-savings', money(t.savings_usd));
  setText('total-counterfactual', money(t.counterfactual_cost_usd));
  setText('reference-route', body.reference_route == null ? 'no reference route' : body.reference_route);
  setText('total-escalation-share', share(t.escalation_share));
  setText('total-escalations', String(t.escalations));
  setText('total-routed', String(t.routed));
  setText('total-p50-latency', ms(t.p50_latency_ms));
  setText('total-p95-latency', ms(t.p95_latency_ms));
  setText('total-p50-ttft', ms(t.p50_ttft_ms));
  renderRoutes(body.routes);
  renderClasses(body.classes || []);
  renderCharts(body);
}

function renderClasses(classes) {
  const tbody = document.getElementById('classes');
  tbody.replaceChildren();
  for (const c of classes) {
    const name = c.class == null ? '(none)' : c.class;
    const tr = el('tr', { 'data-testid': 'class-row', 'data-class': name }, tbody);
    const cells = [
      ['class-name', name],
      ['class-requests', String(c.requests)],
      ['class-errors', String(c.errors)],
      ['class-cost', money(c.cost_usd)],
      ['class-savings', money(c.savings_usd)],
      ['class-escalation-share', share(c.escalation_share)],
      ['class-p50-latency', ms(c.p50_latency_ms)],
      ['class-p95-latency', ms(c.p95_latency_ms)],
      ['class-input-tokens', String(c.input_tokens)],
      ['class-output-tokens', String(c.output_tokens)],
    ];
    for (const [id, text] of cells) el('td', { 'data-testid': id }, tr).textContent = text;
  }
}

function renderRoutes(routes) {
  const tbody = document.getElementById('routes');
  tbody.replaceChildren();
  for (const r of routes) {
    const tr = el('tr', { 'data-testid': 'route-row', 'data-route': routeName(r.route) }, tbody);
    const cells = [
      ['route-name', routeName(r.route)],
      ['route-requests', String(r.requests)],
      ['route-errors', String(r.errors)],
      ['route-cost', money(r.cost_usd)],
      ['route-savings', money(r.savings_usd)],
      ['route-escalation-share', share(r.escalation_share)],
      ['route-p50-latency', ms(r.p50_latency_ms)],
      ['route-p95-latency', ms(r.p95_latency_ms)],
      ['route-p50-ttft', ms(r.p50_ttft_ms)],
      ['route-p95-ttft', ms(r.p95_ttft_ms)],
      ['route-input-tokens', String(r.input_tokens)],
      ['route-output-tokens', String(r.output_tokens)],
      ['route-implied-rate', r.implied_usd_per_mtok == null ? '–' : money(r.implied_usd_per_mtok)],
    ];
    for (const [id, text] of cells) el('td', { 'data-testid': id }, tr).textContent = text;
  }
}

function timeLabel(t, window) {
  const d = new Date(t);
  if (window === '7d') return d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' +
    d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function renderCharts(body) {
  const legend = document.getElementById('legend');
  legend.replaceChildren();
  const names = body.routes.map((r) => routeName(r.route));
  names.forEach((n, i) => { el('span', { class: 'c' + (i % COLORS.length) }, legend).textContent = n; });
  document.getElementById('bucket').textContent =
    '(' + Math.round(body.bucket_ms / 60000) + '-minute buckets)';
  const charts = document.getElementById('charts');
  charts.replaceChildren();
  for (const chart of CHARTS) drawChart(charts, chart, body, names);
}

// One line per route: x is the bucket's start within the window, y the value scaled to
// the largest value shown (0 at the bottom). Buckets without a value break the line.
function drawChart(parent, chart, body, names) {
  const W = 600, H = 190, L = 64, R = 12, T = 10, B = 24;
  const figure = el('figure', { 'data-testid': 'chart-' + chart.id }, parent);
  el('figcaption', {}, figure).textContent = chart.title;
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': chart.title }, figure, SVG_NS);
  const starts = [...new Set(body.series.map((p) => p.bucket_start_ms))].sort((a, b) => a - b);
  const x0 = starts.length ? starts[0] : body.from_ms;
  const x1 = starts.length > 1 ? starts[starts.length - 1] : x0 + body.bucket_ms;
  const values = body.series.map(chart.value).filter((v) => v != null && isFinite(v));
  const max = Math.max(0, ...values) || 1;
  const x = (t) => L + ((t - x0) / (x1 - x0)) * (W - L - R);
  const y = (v) => T + (1 - v / max) * (H - T - B);
  el('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }, svg, SVG_NS);
  el('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }, svg, SVG_NS);
  el('text', { x: L - 6, y: T + 8, 'text-anchor': 'end' }, svg, SVG_NS).textContent = chart.fmt(max);
  el('text', { x: L - 6, y: H - B, 'text-anchor': 'end' }, svg, SVG_NS).textContent = chart.fmt(0);
  el('text', { x: L, y: H - 6 }, svg, SVG_NS).textContent = timeLabel(x0, body.window);
  el('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, svg, SVG_NS).textContent = timeLabel(x1, body.window);
  names.forEach((name, i) => {
    const points = body.series
      .filter((p) => routeName(p.route) === name)
      .sort((a, b) => a.bucket_start_ms - b.bucket_start_ms);
    const color = COLORS[i % COLORS.length];
    let d = '';
    let pen = 'M';
    let shown = 0;
    let sum = 0;
    for (const p of points) {
      const v = chart.value(p);
      if (v == null || !isFinite(v)) { pen = 'M'; continue; }
      d += `${pen}${x(p.bucket_start_ms).toFixed(1)},${y(v).toFixed(1)} `;
      pen = 'L';
      shown += 1;
      sum += v;
      el('circle', { cx: x(p.bucket_start_ms).toFixed(1), cy: y(v).toFixed(1), r: 1.8, fill: color }, svg, SVG_NS);
    }
    el('path', {
      d: d.trim() || 'M0,0', fill: 'none', stroke: color, 'stroke-width': 1.6,
      'data-route': name, 'data-points': shown, 'data-sum': sum,
    }, svg, SVG_NS);
  });
}

document.addEventListener('DOMContentLoaded', () => {
  for (const b of document.querySelectorAll('nav button')) {
    b.addEventListener('click', () => {
      const url = new URL(location.href);
      url.searchParams.set('window', b.dataset.window);
      history.replaceState(null, '', url);
      load(b.dataset.window);
    });
  }
  load(initialWindow());
});
