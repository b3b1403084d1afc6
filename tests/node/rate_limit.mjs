// Concurrency limit: with one slot taken, the Node SDK (no retries) throws Browserbase.RateLimitError (429).
// env: BF_URL, BF_API_KEY (the key of a project whose concurrency is 1)
import Browserbase from '@browserbasehq/sdk';
import { check, run, sdk } from './lib.mjs';

await run(async () => {
  const bb = sdk({ maxRetries: 0 });
  const first = await bb.sessions.create({});
  check(first.status === 'RUNNING', `first session status is ${first.status}`);
  let error = null;
  try {
    const second = await bb.sessions.create({});
    await bb.sessions.update(second.id, { status: 'REQUEST_RELEASE' });
  } catch (caught) {
    error = caught;
  }
  const released = await bb.sessions.update(first.id, { status: 'REQUEST_RELEASE' });
  // The slot is free again once the first session is released.
  const third = await bb.sessions.create({});
  await bb.sessions.update(third.id, { status: 'REQUEST_RELEASE' });
  return {
    firstId: first.id,
    errorClass: error?.constructor?.name ?? null,
    isRateLimitError: error instanceof Browserbase.RateLimitError,
    isAPIError: error instanceof Browserbase.APIError,
    status: error?.status ?? null,
    message: error?.message ?? null,
    retryAfter: error?.headers?.['retry-after'] ?? null,
    rateLimitLimit: error?.headers?.['x-ratelimit-limit'] ?? null,
    rateLimitRemaining: error?.headers?.['x-ratelimit-remaining'] ?? null,
    releasedStatus: released.status,
    thirdStatus: third.status,
  };
});
