// Loads the sluicegate dashboard in headless Chromium and prints what it shows, as JSON.
//
//   node dashboard.mjs URL SCREENSHOT.png
//
// URL is the page to open (e.g. http://127.0.0.1:PORT/dashboard?key=KEY&window=1h). The
// script waits for the figures to load, reads every number marked with `data-testid`, saves a
// full-page screenshot, then switches to the 7d window and reads again. It prints
// {first, after_7d, requests, foreign_requests, console_errors} on stdout; the Rust test
// (tests/tests/dashboard_browser.rs) compares it with /api/usage and the ledger.
// Chromium is Debian's (`apt-get install chromium`); CHROMIUM_PATH overrides /usr/bin/chromium.
import { chromium } from 'playwright-core';

const [url, screenshot] = process.argv.slice(2);
if (!url || !screenshot) {
  console.error('usage: node dashboard.mjs URL SCREENSHOT.png');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const origin = new URL(url).origin;

// Runs in the page: every figure the dashboard shows, as text.
function readPage() {
  const text = (id) => {
    const node = document.querySelector('[data-testid="' + id + '"]');
    return node ? node.textContent : null;
  };
  const totals = {};
  for (const node of document.querySelectorAll('[data-testid^="total-"], [data-testid="reference-route"]')) {
    totals[node.dataset.testid] = node.textContent;
  }
  const routes = [...document.querySelectorAll('[data-testid="route-row"]')].map((tr) =>
    Object.fromEntries([...tr.querySelectorAll('td')].map((td) => [td.dataset.testid, td.textContent])));
  const classes = [...document.querySelectorAll('[data-testid="class-row"]')].map((tr) =>
    Object.fromEntries([...tr.querySelectorAll('td')].map((td) => [td.dataset.testid, td.textContent])));
  const charts = [...document.querySelectorAll('figure[data-testid^="chart-"]')].map((f) => ({
    id: f.dataset.testid,
    lines: [...f.querySelectorAll('path[data-route]')].map((p) => ({
      route: p.dataset.route,
      points: Number(p.dataset.points),
      sum: Number(p.dataset.sum),
      d: p.getAttribute('d'),
    })),
  }));
  const status = document.querySelector('[data-testid="status"]');
  return {
    status: text('status'),
    state: status.dataset.state,
    window: status.dataset.window || null,
    pressed: [...document.querySelectorAll('nav button[aria-pressed="true"]')].map((b) => b.dataset.window),
    totals,
    routes,
    classes,
    charts,
  };
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // Root in a container has no user namespaces for Chromium's sandbox.
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
let exitCode = 0;
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  const requests = [];
  const consoleErrors = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  const response = await page.goto(url, { waitUntil: 'load' });
  if (!response || !response.ok()) throw new Error('GET ' + url + ': HTTP ' + (response && response.status()));
  await page.waitForSelector('[data-testid="status"][data-state="ready"]', { timeout: 15000 });
  const first = await page.evaluate(readPage);
  first.location = page.url();
  await page.screenshot({ path: screenshot, fullPage: true });
  await page.click('[data-testid="window-7d"]');
  await page.waitForSelector('[data-testid="status"][data-state="ready"][data-window="7d"]', { timeout: 15000 });
  const after7d = await page.evaluate(readPage);
  after7d.location = page.url();
  const foreign = requests.filter((u) => !u.startsWith(origin + '/'));
  process.stdout.write(JSON.stringify({
    first, after_7d: after7d, requests, foreign_requests: foreign, console_errors: consoleErrors,
  }) + '\n');
} catch (e) {
  console.error('dashboard.mjs: ' + (e && e.stack ? e.stack : e));
  exitCode = 1;
} finally {
  await browser.close();
}
process.exit(exitCode);
