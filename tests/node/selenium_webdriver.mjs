// selenium-webdriver (Node) against the WebDriver endpoint: a session made with the SDK, driven with its
// signing key on every command (docs/selenium.md), quit, and the session ends.
// env: BF_URL, BF_API_KEY, SITE_URL
import { By, until, WebDriver } from 'selenium-webdriver';
import { Executor, HttpClient } from 'selenium-webdriver/http/index.js';
import { Options } from 'selenium-webdriver/chrome.js';
import { env, run, sdk, waitForStatus } from './lib.mjs';

// The client every command goes through, with the session's signing key as a header.
class SignedClient extends HttpClient {
  constructor(url, signingKey) {
    super(url);
    this.signingKey = signingKey;
  }

  send(request) {
    request.headers.set('x-bb-signing-key', this.signingKey);
    return super.send(request);
  }
}

await run(async () => {
  const bb = sdk();
  const session = await bb.sessions.create({ browserSettings: { recordSession: false } });
  const executor = new Executor(new SignedClient(session.seleniumRemoteUrl, session.signingKey));
  const driver = WebDriver.createSession(executor, new Options());
  const sessionId = (await driver.getSession()).getId();
  await driver.get(`${env('SITE_URL')}/index.html`);
  const title = await driver.getTitle();
  const heading = await driver.findElement(By.css('h1')).getText();
  await driver.findElement(By.linkText('Tickets')).click();
  await driver.wait(until.urlContains('/tickets.html'), 10000);
  const answer = await driver.executeScript('return 6 * 7');
  const screenshot = await driver.takeScreenshot();
  await driver.quit();
  const ended = await waitForStatus(bb, session.id, 'COMPLETED');
  return {
    sameId: sessionId === session.id,
    title,
    heading,
    answer,
    png: Buffer.from(screenshot, 'base64').subarray(1, 4).toString(),
    status: ended.status,
  };
});
