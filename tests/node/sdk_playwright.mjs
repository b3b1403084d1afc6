// Browserbase Node SDK + Playwright (playwright-core) over CDP: the Browserbase quick-start, pointed at browserfleet.
// env: BF_URL, BF_API_KEY, SITE_URL
import { chromium } from 'playwright-core';
import { check, env, run, sdk, waitForStatus } from './lib.mjs';

await run(async () => {
  const bb = sdk();
  const session = await bb.sessions.create({});
  check(session.status === 'RUNNING', `created session status is ${session.status}`);
  check(typeof session.connectUrl === 'string' && session.connectUrl.length > 0, 'connectUrl missing');

  const browser = await chromium.connectOverCDP(session.connectUrl);
  const contexts = browser.contexts();
  check(contexts.length > 0, 'no default browser context');
  const pages = contexts[0].pages();
  check(pages.length > 0, 'default context has no page');
  const page = pages[0];
  await page.goto(`${env('SITE_URL')}/index.html`);
  const indexTitle = await page.title();
  await page.getByRole('link', { name: 'Tickets' }).click();
  await page.waitForURL('**/tickets.html');
  const title = await page.title();
  const heading = await page.locator('h1').textContent();
  const listedRunning = (await bb.sessions.list({ status: 'RUNNING' })).some((s) => s.id === session.id);
  await browser.close();

  // keepAlive is false: the session ends once the last CDP client has gone.
  const ended = await waitForStatus(bb, session.id, 'COMPLETED');
  const listed = (await bb.sessions.list()).some((s) => s.id === session.id);
  const listedCompleted = (await bb.sessions.list({ status: 'COMPLETED' })).some((s) => s.id === session.id);
  return {
    sessionId: session.id,
    createdStatus: session.status,
    connectUrl: session.connectUrl,
    keepAlive: session.keepAlive,
    contexts: contexts.length,
    pages: pages.length,
    indexTitle,
    title,
    heading,
    url: page.url(),
    listedRunning,
    finalStatus: ended.status,
    endedAt: ended.endedAt ?? null,
    listed,
    listedCompleted,
  };
});
