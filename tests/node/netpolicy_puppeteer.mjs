// Puppeteer with its own request interception (setRequestInterception, continuing every request) in a session
// with allowedDomains and blockAds: what it reports for an allowed page, a blocked one and a page with ads.
// env: BF_URL, BF_API_KEY, NP_DOMAIN, NP_ALLOWED_URL, NP_BLOCKED_URL, NP_ADS_URL
import puppeteer from 'puppeteer-core';
import { env, run, sdk } from './lib.mjs';

await run(async () => {
  const bb = sdk();
  const session = await bb.sessions.create({
    browserSettings: { allowedDomains: [env('NP_DOMAIN')], blockAds: true, recordSession: false },
  });
  const browser = await puppeteer.connect({ browserWSEndpoint: session.connectUrl, defaultViewport: null });
  try {
    const [page] = await browser.pages();
    const intercepted = [];
    await page.setRequestInterception(true);
    page.on('request', (request) => {
      intercepted.push(request.url());
      request.continue();
    });
    const allowed = await page.goto(env('NP_ALLOWED_URL'));
    const allowedTitle = await page.title();
    const blocked = await page.goto(env('NP_BLOCKED_URL'));
    const blockedTitle = await page.title();
    await page.goto(env('NP_ADS_URL'));
    const loaded = await page.evaluate(() => window.probes.then(() => window.loaded));
    return {
      allowedStatus: allowed.status(),
      allowedTitle,
      blockedStatus: blocked.status(),
      blockedTitle,
      loaded,
      sawBlocked: intercepted.includes(env('NP_BLOCKED_URL')),
    };
  } finally {
    await browser.disconnect();
    await bb.sessions.update(session.id, { status: 'REQUEST_RELEASE' });
  }
});
