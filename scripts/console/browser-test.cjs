// The web console in real headless Chromium (Debian's, driven by
// playwright-core): the talk page with a fake microphone playing a WAV file
// (the robot's greeting must play, the caller's words must come back as a
// transcript), then every page with the data that session left. Screenshots
// and the page weight / load time go to $ARTIFACTS.
//
//   node browser-test.cjs BASE_URL WAV ARTIFACTS
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const path = require('path');

const [base, wav, artifacts] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
fs.mkdirSync(artifacts, { recursive: true });

function fail(msg) { console.error('console test: FAIL: ' + msg); process.exitCode = 1; throw new Error(msg); }
const log = (m) => console.log('console test: ' + m);

(async () => {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${wav}`,
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

    // Page weight and load time of a cold load of the console (calls view).
    const t0 = Date.now();
    await page.goto(base + '/#/calls', { waitUntil: 'load' });
    await page.waitForSelector('#calls, #empty', { timeout: 30000 });
    const wall = Date.now() - t0;
    const timing = await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const res = performance.getEntriesByType('resource').map((r) => ({ name: new URL(r.name).pathname, bytes: r.encodedBodySize, ms: Math.round(r.duration) }));
      return { html_bytes: nav.encodedBodySize, dom_content_loaded_ms: Math.round(nav.domContentLoadedEventEnd), load_ms: Math.round(nav.loadEventEnd), resources: res };
    });
    timing.first_view_rendered_ms = wall;
    fs.writeFileSync(path.join(artifacts, 'page-weight.json'), JSON.stringify(timing, null, 2));
    log('page weight: ' + JSON.stringify(timing));

    // Talk to the robot. On a loaded machine whisper may overrun its
    // deadline (the turn comes back as silence and the robot gives up after
    // its prompt): then start a new session, up to three.
    await page.goto(base + '/#/talk');
    const heard = () => page.evaluate(() => [...document.querySelectorAll('#talk-transcript .caller')].some((e) => /table/i.test(e.textContent)));
    for (let attempt = 1; ; attempt++) {
      await page.click('#talk-start');
      await page.waitForFunction(() => window.vbTalk && window.vbTalk.playedSamples >= 8000 * 2, null, { timeout: 120000 })
        .catch(async () => fail('the greeting did not play: ' + await page.evaluate(() => JSON.stringify(window.vbTalk))));
      log(`session ${attempt}: greeting played`);
      if (attempt === 1) await page.screenshot({ path: path.join(artifacts, 'talk-greeting.png'), fullPage: true });
      await page.waitForFunction(() => window.vbTalk.ended || [...document.querySelectorAll('#talk-transcript .caller')].some((e) => /table/i.test(e.textContent)), null, { timeout: 180000 })
        .catch(() => {});
      if (await heard()) break;
      await page.screenshot({ path: path.join(artifacts, `talk-not-heard-${attempt}.png`), fullPage: true });
      if (attempt === 3) fail('the caller\'s words never appeared: ' + await page.textContent('#main'));
      log(`session ${attempt}: words not heard (${await page.evaluate(() => window.vbTalk.ended)}); again`);
      await page.waitForFunction(() => window.vbTalk.ended, null, { timeout: 120000 }).catch(() => {});
    }
    const said = await page.textContent('#talk-transcript');
    log('transcript: ' + said.replace(/\s+/g, ' ').slice(0, 300));
    await page.waitForSelector('#talk-transcript .bar', { timeout: 10000 });
    await page.screenshot({ path: path.join(artifacts, 'talk-transcript.png'), fullPage: true });
    await page.click('#talk-stop');
    await page.waitForFunction(() => window.vbTalk && window.vbTalk.ended, null, { timeout: 60000 });
    log('hung up: ' + await page.evaluate(() => window.vbTalk.ended));

    // The session is a call now: list, detail with timing bars, lead.
    let rows = 0;
    for (let i = 0; i < 60 && rows === 0; i++) {
      await page.goto(base + '/#/calls');
      await page.waitForSelector('#calls, #empty');
      rows = await page.locator('#calls tbody tr').count();
      if (rows === 0) await page.waitForTimeout(1000);
    }
    if (rows === 0) fail('the calls page lists no call after the talk session');
    const first = await page.textContent('#calls tbody tr');
    if (!/web:/.test(first)) fail('the call is not shown as a web call: ' + first);
    await page.screenshot({ path: path.join(artifacts, 'calls.png'), fullPage: true });
    // Filters drive the API's query: no outbound call was made; the web call
    // is inbound and found by its caller text.
    await page.selectOption('#call-filters [name=direction]', 'outbound');
    await page.fill('#call-filters [name=caller]', 'web:');
    await page.click('#call-filters button[type=submit]');
    await page.waitForFunction(() => /direction=outbound/.test(location.hash));
    await page.waitForSelector('#empty');
    await page.selectOption('#call-filters [name=direction]', 'inbound');
    await page.click('#call-filters button[type=submit]');
    await page.waitForSelector('#calls tbody tr');
    const filtered = await page.locator('#calls tbody tr').allTextContents();
    if (!filtered.length || !filtered.every((t) => /web:/.test(t))) fail('filtered calls: ' + filtered.join(' | '));
    await page.click('#clear-filters');
    await page.waitForFunction(() => location.hash === '#/calls');
    await page.waitForSelector('#calls tbody tr');
    await page.click('#calls tbody tr a');
    await page.waitForSelector('#transcript .turn');
    const transcript = await page.textContent('#transcript');
    if (!/table/i.test(transcript)) fail('the call page has no transcript: ' + transcript);
    if (await page.locator('#transcript .bar span').count() < 4) fail('no timing bars on the call page');
    await page.screenshot({ path: path.join(artifacts, 'call.png'), fullPage: true });

    await page.goto(base + '/#/leads');
    await page.waitForSelector('#leads, #empty');
    if (await page.locator('#leads [data-interest]').count() < 1) fail('no lead with an interest class');
    await page.screenshot({ path: path.join(artifacts, 'leads.png'), fullPage: true });

    await page.goto(base + '/#/health');
    await page.waitForSelector('#checks');
    const health = await page.textContent('#main');
    if (!/Live:\s*yes/.test(health) || !/models/.test(health)) fail('health page: ' + health);
    await page.screenshot({ path: path.join(artifacts, 'health.png'), fullPage: true });

    await page.goto(base + '/#/config');
    await page.waitForSelector('#config');
    const config = await page.textContent('#config');
    if (!/max_calls/.test(config) || !/reception-en/.test(config)) fail('config page: ' + config);
    await page.screenshot({ path: path.join(artifacts, 'config.png'), fullPage: true });

    await page.goto(base + '/#/queue');
    await page.waitForSelector('#main h1');
    await page.waitForFunction(() => document.body.dataset.view === 'queue');
    await page.screenshot({ path: path.join(artifacts, 'queue.png'), fullPage: true });

    // Readable on a phone.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(base + '/#/calls');
    await page.waitForSelector('#calls');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    if (overflow) fail('the calls page scrolls sideways on a phone');
    await page.screenshot({ path: path.join(artifacts, 'calls-phone.png'), fullPage: true });

    // 404s are expected (the queue probe on a box without the queue API).
    const bad = errors.filter((e) => !/Failed to load resource: .* 404/.test(e));
    if (bad.length) fail('errors in the page (CSP?): ' + bad.join(' | '));
    log('all pages rendered with real data; screenshots in ' + artifacts);
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e); process.exitCode = 1; });
