// The gateway as the official TypeScript SDK (@anthropic-ai/sdk) sees it: listing one
// project's batches when many newer batches of another project sit in front of them, and
// deleting a batch still in progress. Real binaries (`batchcost simulate` frozen, so
// batches stay in progress, and `batchcost serve`), each on port 0, found through the
// `listening on` line they print once bound.
//   BATCHCOST_BIN=target/debug/batchcost BATCHCOST_REPO=. NODE_PATH=... node --test tests/node
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const sdkDir = process.env.BATCHCOST_NODE_SDKS;
const Anthropic = require(sdkDir ? join(sdkDir, 'node_modules', '@anthropic-ai/sdk') : '@anthropic-ai/sdk').default;

const BIN = process.env.BATCHCOST_BIN ?? 'target/debug/batchcost';
const REPO = process.env.BATCHCOST_REPO ?? process.cwd();
const KEYS = { alpha: 'node-alpha-key', beta: 'node-beta-key' };
const procs = [];
let dir;
let gateway;

/** Starts a binary and resolves with the URL from its first stdout line. */
function start(args, env) {
  const p = spawn(BIN, args, { env: { ...process.env, RUST_LOG: 'warn', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  procs.push(p);
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: p.stdout });
    lines.once('line', (line) => {
      const m = /^listening on (\S+)/.exec(line);
      if (m) resolve(m[1]);
      else reject(new Error(`${args[0]} did not start: ${line}`));
    });
    p.once('exit', (code) => reject(new Error(`${args[0]} exited with ${code}`)));
  });
}

function client(project) {
  // maxRetries 0: an answer the SDK would retry (409, 5xx) must not hide behind retries.
  return new Anthropic({ apiKey: KEYS[project], baseURL: gateway, maxRetries: 0 });
}

function body(tag) {
  return {
    requests: [{
      custom_id: `${tag}-0`,
      params: { model: 'claude-haiku-4-5', max_tokens: 16, messages: [{ role: 'user', content: `Say ${tag}.` }] },
    }],
  };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'batchcost-node-'));
  const sim = await start(['simulate', '--listen', '127.0.0.1:0', '--api-key', 'node-provider-key', '--time-scale', '0', '--seed', '5'], {});
  writeFileSync(join(dir, 'batchcost.toml'), [
    'listen = "127.0.0.1:0"',
    `pricing = "${join(REPO, 'pricing.toml')}"`,
    'timezone = "Asia/Seoul"',
    '[storage]',
    `url = "sqlite://${join(dir, 'ledger.db')}"`,
    '[upstream.anthropic]',
    `base_url = "${sim}"`,
    'api_key_env = "NODE_PROVIDER_KEY"',
    '[admin]',
    'token_env = "NODE_ADMIN_TOKEN"',
    '[[projects]]', 'name = "alpha"', 'api_key_envs = ["NODE_ALPHA_KEY"]',
    '[[projects]]', 'name = "beta"', 'api_key_envs = ["NODE_BETA_KEY"]',
    '',
  ].join('\n'));
  gateway = await start(['serve', '--config', join(dir, 'batchcost.toml')], {
    NODE_PROVIDER_KEY: 'node-provider-key', NODE_ADMIN_TOKEN: 'node-admin-token',
    NODE_ALPHA_KEY: KEYS.alpha, NODE_BETA_KEY: KEYS.beta,
  });
});

after(() => {
  for (const p of procs) p.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function collect(project, limit, query = {}) {
  const ids = [];
  for await (const b of client(project).messages.batches.list({ limit, ...query })) ids.push(b.id);
  return ids;
}

test('a project behind 50 newer batches of another still lists all its batches', async () => {
  const alpha = [];
  for (let i = 0; i < 3; i++) alpha.push((await client('alpha').messages.batches.create(body(`a${i}`))).id);
  const beta = [];
  for (let i = 0; i < 50; i++) beta.push((await client('beta').messages.batches.create(body(`b${i}`))).id);
  const newestFirst = (ids) => [...ids].reverse();

  for (const limit of [1, 2, 20]) {
    assert.deepEqual(await collect('alpha', limit), newestFirst(alpha), `alpha, limit ${limit}`);
  }
  assert.deepEqual(await collect('beta', 20), newestFirst(beta), 'beta, limit 20');
  assert.deepEqual(await collect('beta', 7), newestFirst(beta), 'beta, limit 7');

  // One page by hand: the list shape, and `before_id` walking back towards the newest.
  const page = await client('alpha').messages.batches.list({ limit: 2 });
  assert.deepEqual(page.data.map((b) => b.id), newestFirst(alpha).slice(0, 2));
  assert.equal(page.has_more, true);
  assert.equal(page.first_id, alpha[2]);
  assert.equal(page.last_id, alpha[1]);
  for (const b of page.data) assert.ok(b.results_url === null || b.results_url.startsWith(gateway), b.results_url);
  const back = await client('alpha').messages.batches.list({ limit: 1, before_id: alpha[0] });
  assert.deepEqual(back.data.map((b) => b.id), [alpha[1]]);
  assert.equal(back.has_more, true);
  assert.deepEqual(await collect('alpha', 1, { before_id: alpha[0] }), [alpha[1], alpha[2]]);
});

test('deleting a batch still in progress is a 400 invalid_request_error, at once', async () => {
  const c = client('alpha');
  const batch = await c.messages.batches.create(body('del'));
  assert.equal(batch.processing_status, 'in_progress');
  await assert.rejects(c.messages.batches.delete(batch.id), (err) => {
    assert.equal(err.status, 400, `status ${err.status}: ${err.message}`);
    assert.equal(err.error?.error?.type, 'invalid_request_error');
    assert.match(err.error?.error?.message, /cancel/);
    return true;
  });
  // Still there, still in progress: nothing was deleted.
  const again = await c.messages.batches.retrieve(batch.id);
  assert.equal(again.processing_status, 'in_progress');
});
