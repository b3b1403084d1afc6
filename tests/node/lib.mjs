// Shared by the client scripts: inputs from env, one JSON line of results on stdout, non-zero exit on failure.
import Browserbase from '@browserbasehq/sdk';

export function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is required`);
  return value;
}

export function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

// The Node SDK exactly as a user builds it, pointed at the server.
export function sdk(options = {}) {
  return new Browserbase({ apiKey: env('BF_API_KEY'), baseURL: env('BF_URL'), ...options });
}

// Retrieve a session until its status is `want` (ending after a disconnect is asynchronous).
export async function waitForStatus(bb, id, want, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let session = await bb.sessions.retrieve(id);
  while (session.status !== want && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    session = await bb.sessions.retrieve(id);
  }
  return session;
}

// Run `body`, print its result as one JSON line and exit: 0 on success, 1 on any error.
export async function run(body) {
  const limit = Number(process.env.BF_SCRIPT_TIMEOUT_MS ?? 75000);
  const timer = setTimeout(() => {
    console.error(`timed out after ${limit} ms`);
    process.exit(2);
  }, limit);
  try {
    const result = await body();
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.exitCode = 0;
  } catch (error) {
    console.error(error?.stack ?? String(error));
    process.exitCode = 1;
  } finally {
    clearTimeout(timer);
  }
  // Clients may keep sockets (keep-alive agents) open; the result is out, so do not wait for them.
  process.exit(process.exitCode);
}
