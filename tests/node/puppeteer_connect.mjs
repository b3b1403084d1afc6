// Puppeteer (puppeteer-core) connecting by URL alone: `?apiKey=` with no sessionId creates a session on connect.
// env: BF_URL, BF_WS, BF_API_KEY, SITE_URL
import puppeteer from 'puppeteer-core';
import { check, env, run, sdk, waitForStatus } from './lib.mjs';

async function runningIds(bb) {
  return new Set((await bb.sessions.list({ status: 'RUNNING' })).map((s) => s.id));
}

// Connect, use the open page, disconnect; report what the page showed and what became of the implicit session.
async function visit(bb, connectOptions) {
  const before = await runningIds(bb);
  const browser = await puppeteer.connect({ ...connectOptions, defaultViewport: null });
  const created = [...(await runningIds(bb))].filter((id) => !before.has(id));
  check(created.length === 1, `expected one new RUNNING session after connect, found ${created.length}`);
  const pages = await browser.pages();
  check(pages.length > 0, 'the browser has no open page');
  const page = pages[0];
  await page.goto(`${env('SITE_URL')}/index.html`);
  const heading = await page.$eval('h1', (el) => el.textContent);
  const title = await page.title();
  await browser.disconnect();
  const ended = await waitForStatus(bb, created[0], 'COMPLETED');
  return { sessionId: created[0], pages: pages.length, heading, title, finalStatus: ended.status };
}

await run(async () => {
  const bb = sdk();
  const key = encodeURIComponent(env('BF_API_KEY'));
  const wsEndpoint = await visit(bb, { browserWSEndpoint: `${env('BF_WS')}/?apiKey=${key}` });

  // puppeteer.connect({browserURL}) fetches `new URL('/json/version', browserURL)`, which drops the query string
  // (and sends no custom headers), so an apiKey in browserURL never reaches the server: the variant cannot work
  // with any server that needs a key. Record what actually happens rather than pretend.
  let browserURL;
  try {
    browserURL = { connected: true, ...(await visit(bb, { browserURL: `${env('BF_URL')}/?apiKey=${key}` })) };
  } catch (error) {
    browserURL = { connected: false, error: String(error?.message ?? error) };
  }
  return { wsEndpoint, browserURL };
});
