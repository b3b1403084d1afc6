// keepAlive: a session outlives its client's disconnect, is resumed by apiKey + sessionId, and ends on REQUEST_RELEASE.
// env: BF_URL, BF_WS, BF_API_KEY, SITE_URL
import { chromium } from 'playwright-core';
import { check, env, run, sdk, waitForStatus } from './lib.mjs';

await run(async () => {
  const bb = sdk();
  const site = env('SITE_URL');
  const session = await bb.sessions.create({ keepAlive: true });
  check(session.status === 'RUNNING', `created session status is ${session.status}`);

  let browser = await chromium.connectOverCDP(session.connectUrl);
  let context = browser.contexts()[0];
  let page = context.pages()[0];
  await page.goto(`${site}/tickets.html?visit=1`);
  await context.addCookies([{ name: 'bf_keepalive', value: session.id, url: site }]);
  const firstUrl = page.url();
  await browser.close();

  // Give the server time to act on the disconnect, then make sure it did not end the session.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const afterDisconnect = await bb.sessions.retrieve(session.id);

  const key = encodeURIComponent(env('BF_API_KEY'));
  browser = await chromium.connectOverCDP(`${env('BF_WS')}/?apiKey=${key}&sessionId=${session.id}`);
  context = browser.contexts()[0];
  const resumedPages = context.pages();
  page = resumedPages[0];
  const resumedUrl = page.url();
  const resumedTitle = await page.title();
  const cookie = (await context.cookies(site)).find((c) => c.name === 'bf_keepalive');
  await browser.close();
  await new Promise((resolve) => setTimeout(resolve, 500));
  const afterSecondDisconnect = await bb.sessions.retrieve(session.id);

  const released = await bb.sessions.update(session.id, { status: 'REQUEST_RELEASE' });
  const ended = await waitForStatus(bb, session.id, 'COMPLETED');
  // An ended session can no longer be connected to.
  let reconnectAfterRelease;
  try {
    const late = await chromium.connectOverCDP(`${env('BF_WS')}/?apiKey=${key}&sessionId=${session.id}`, {
      timeout: 10000,
    });
    await late.close();
    reconnectAfterRelease = 'connected';
  } catch (error) {
    reconnectAfterRelease = String(error?.message ?? error).split('\n')[0];
  }
  // A second release of an ended session is not an error.
  const releasedAgain = await bb.sessions.update(session.id, { status: 'REQUEST_RELEASE' });
  return {
    sessionId: session.id,
    keepAlive: session.keepAlive,
    firstUrl,
    statusAfterDisconnect: afterDisconnect.status,
    resumedPages: resumedPages.length,
    resumedUrl,
    resumedTitle,
    cookie: cookie?.value ?? null,
    statusAfterSecondDisconnect: afterSecondDisconnect.status,
    releasedStatus: released.status,
    finalStatus: ended.status,
    reconnectAfterRelease,
    releasedAgainStatus: releasedAgain.status,
  };
});
