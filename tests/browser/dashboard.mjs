// Drives Debian's Chromium through the dashboard of a running `vitals serve`
// and prints what a person would have seen, as JSON on stdout: for each page
// visited, the time from navigation to every chart drawn, each chart's rows
// and the marks ECharts drew for them, the account ids on the page, the
// console errors, and a screenshot. The assertions are the caller's
// (tests/python/test_dashboard.py); this script only looks.
//
// Environment: VITALS_URL (http://127.0.0.1:PORT), VITALS_CSM_TOKEN,
// VITALS_ANALYST_TOKEN, VITALS_SHOTS (a folder for the screenshots),
// VITALS_REPEAT (visits per page, for the benchmark; default 1), and
// VITALS_FIRST_URL (the link a first run of `vitals serve` prints), if any.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const base = process.env.VITALS_URL;
const shots = process.env.VITALS_SHOTS || join(tmpdir(), 'vitals-shots');
const repeat = Math.max(1, parseInt(process.env.VITALS_REPEAT || '1', 10));
mkdirSync(shots, { recursive: true });

// Chromium has been seen to die while starting (a SIGSEGV before the first
// page): a launch is tried three times, each with a fresh
// profile, and each failure is reported on stderr. Once started, nothing more
// is retried: what the pages do is the test.
const launch = async () => {
  for (let attempt = 1; ; attempt += 1) {
    const dir = mkdtempSync(join(tmpdir(), 'vitals-chromium-'));
    try {
      const context = await chromium.launchPersistentContext(dir, {
        executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
        headless: true,
        viewport: { width: 1440, height: 1000 },
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
      });
      return [context, dir];
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      process.stderr.write(`chromium did not start (attempt ${attempt} of 3): ${String(e.message).split('\n')[0]}\n`);
      if (attempt === 3) throw e;
    }
  }
};
const [browser, profile] = await launch();

const out = { visits: [], errors: [] };

// What the page shows: charts with their drawn marks, account ids, the nav.
const look = (page) => page.evaluate(() => {
  const charts = (window.vitalsCharts || []).map((c) => {
    const series = c.chart.getModel().getSeries();
    const drawn = series.map((s) => {
      // A Sankey diagram's rows are its links: count the links drawn.
      const data = s.subType === 'sankey' ? s.getEdgeData() : s.getData();
      let n = 0;
      for (let i = 0; i < data.count(); i += 1) if (data.getItemGraphicEl(i)) n += 1;
      return n;
    });
    return { id: c.id, source: c.source, rows: c.rows, marks: c.marks, drawn };
  });
  const orgs = (sel) => [...document.querySelectorAll(sel)].map((el) => el.dataset.org).filter(Boolean);
  return {
    hash: location.hash,
    title: document.querySelector('h1') ? document.querySelector('h1').textContent : '',
    nav: [...document.querySelectorAll('#nav a')].map((a) => a.textContent),
    lang: document.documentElement.lang,
    charts,
    tables: [...document.querySelectorAll('.card')].map((c) => ({ title: (c.querySelector('h2') || {}).textContent || '', rows: c.querySelectorAll('tbody tr').length, orgs: [...c.querySelectorAll('tbody tr')].map((r) => r.dataset.org).filter(Boolean) })),
    alerts: [...document.querySelectorAll('[role=alert]')].map((e) => e.textContent),
    empty: [...document.querySelectorAll('.empty')].map((e) => e.textContent),
    orgs: orgs('tbody tr[data-org]'),
  };
});

const ready = (page) => page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 120000 });

// Goes to a page (by `first`, or by the URL the first visit reached), waits
// for every card to draw, and records the time of each of VITALS_REPEAT
// visits (the first may be a click inside the page; the others are full loads).
async function visit(page, name, first) {
  const times = [];
  let url = null;
  for (let i = 0; i < repeat; i += 1) {
    if (i > 0) await page.goto('about:blank');
    else await page.evaluate(() => { document.body.dataset.state = 'navigating'; });
    const t0 = Date.now();
    if (i === 0) await first();
    else await page.goto(url);
    await ready(page);
    const ms = Date.now() - t0;
    url = page.url();
    times.push(ms);
  }
  const seen = await look(page);
  seen.name = name;
  seen.times_ms = times;
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  out.visits.push(seen);
  return seen;
}

async function session(label, token, steps) {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') out.errors.push(`${label}: console: ${m.text()}`); });
  page.on('pageerror', (e) => out.errors.push(`${label}: page error: ${e.message}`));
  page.on('requestfailed', (r) => out.errors.push(`${label}: request failed: ${r.url()} ${r.failure() && r.failure().errorText}`));
  // Signing in as a person does: the form, not a URL.
  await page.goto(`${base}/#/login`);
  await ready(page);
  await page.fill('#token', token);
  await page.evaluate(() => { document.body.dataset.state = 'navigating'; });
  await page.click('button[type=submit]');
  await ready(page);
  await steps(page);
  await page.evaluate(() => localStorage.clear());
  await page.close();
}

try {
  if (process.env.VITALS_FIRST_URL) {
    // The link `vitals serve` prints on its first run: it signs in by itself.
    const page = await browser.newPage();
    page.on('console', (m) => { if (m.type() === 'error') out.errors.push(`first run: console: ${m.text()}`); });
    page.on('pageerror', (e) => out.errors.push(`first run: page error: ${e.message}`));
    const seen = await visit(page, 'first-run', () => page.goto(process.env.VITALS_FIRST_URL));
    seen.url = page.url();
    seen.history = await page.evaluate(() => history.length);
    await page.evaluate(() => localStorage.clear());
    await page.close();
  }
  await session('csm', process.env.VITALS_CSM_TOKEN, async (page) => {
    // A CSM's home is "My accounts".
    await visit(page, 'csm-accounts', () => page.reload());
    // Click the first declining account.
    await visit(page, 'csm-account', () => page.locator('.card', { has: page.locator('h2', { hasText: 'Declining accounts' }) }).locator('tbody tr a[href^="#/account/"]').first().click());
    // The same page in Chinese, and back.
    await visit(page, 'csm-account-zh', () => page.click('#lang'));
    await page.evaluate(() => { document.body.dataset.state = 'navigating'; });
    await page.click('#lang');
    await ready(page);
    // From the account to its first (key) user.
    await visit(page, 'csm-user', () => page.click('.card tbody tr a[href^="#/user/"]'));
  });
  await session('analyst', process.env.VITALS_ANALYST_TOKEN, async (page) => {
    for (const [name, hash] of [['overview', '#/overview'], ['accounts', '#/accounts'], ['product', '#/product'], ['product-browser', '#/product?breakdown=browser'], ['product-account', '#/product?unit=account'], ['reports', '#/reports'], ['report-user-lifecycle', '#/reports/user_lifecycle?period=week'], ['report-funnel-form', '#/reports/funnel']]) {
      await page.goto('about:blank');
      await visit(page, name, () => page.goto(`${base}/${hash}`));
    }
    // A click on the funnel's third bar (halfway up it) shows who dropped out before that step.
    await page.goto(`${base}/#/product`);
    await ready(page);
    await visit(page, 'product-drop', async () => {
      const el = page.locator('[data-chart=funnel]');
      await el.scrollIntoViewIfNeeded();
      const [x, y] = await page.evaluate(() => {
        const c = window.vitalsCharts.find((v) => v.id === 'funnel').chart;
        const item = c.getOption().series[0].data[2];
        const value = item !== null && typeof item === 'object' ? item.value : item;
        return c.convertToPixel({ seriesIndex: 0 }, [2, value / 2]);
      });
      const box = await el.boundingBox();
      await page.mouse.click(box.x + x, box.y + y);
    });
    // The first account of the list of accounts whose health moved most.
    await page.goto(`${base}/#/overview`);
    await ready(page);
    await visit(page, 'account', () => page.click('.card tbody tr a[href^="#/account/"]'));
  });
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(out));
