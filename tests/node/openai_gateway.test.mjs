// The gateway's OpenAI surface as the official `openai` npm package sees it: two projects
// upload, create, poll and read output and error files through the gateway against the
// simulator's OpenAI API; each project sees only its own files and batches; the test
// prices every output line from pricing.toml itself (integer pico-dollars, no floats) and
// checks the ledger's cost.
//   BATCHCOST_BIN=target/debug/batchcost BATCHCOST_REPO=. BATCHCOST_NODE_SDKS=... node --test tests/node
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const sdkDir = process.env.BATCHCOST_NODE_SDKS;
const openaiPkg = require(sdkDir ? join(sdkDir, 'node_modules', 'openai') : 'openai');
const OpenAI = openaiPkg.default ?? openaiPkg.OpenAI;
const { toFile } = openaiPkg;

const BIN = process.env.BATCHCOST_BIN ?? 'target/debug/batchcost';
const REPO = process.env.BATCHCOST_REPO ?? process.cwd();
const KEYS = { alpha: 'node-oa-alpha-key', beta: 'node-oa-beta-key' };
const ADMIN = 'node-oa-admin';
const PROVIDER = 'node-oa-provider-key';
const procs = [];
let dir;
let gateway;

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
  return new OpenAI({ apiKey: KEYS[project], baseURL: `${gateway}/v1`, maxRetries: 0 });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitEnded(c, id) {
  for (let i = 0; i < 1200; i++) {
    const b = await c.batches.retrieve(id);
    if (['completed', 'failed', 'expired', 'cancelled'].includes(b.status)) return b;
    await sleep(100);
  }
  throw new Error(`batch ${id} did not end`);
}

async function admin(path) {
  const r = await fetch(`${gateway}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } });
  return r.json();
}

async function waitSettled(id) {
  for (let i = 0; i < 600; i++) {
    const r = await fetch(`${gateway}/api/batches/${id}`, { headers: { authorization: `Bearer ${ADMIN}` } });
    if (r.ok) {
      const rec = await r.json();
      if (rec.status === 'settled') return rec;
    }
    await sleep(100);
  }
  throw new Error(`batch ${id} did not settle`);
}

/** Exact decimal string (pricing.toml) -> pico-dollars per token (USD per million tokens). */
function picoPerToken(s) {
  const [i, f = ''] = String(s).split('.');
  return BigInt(i + f.padEnd(12, '0').slice(0, 12)) / 1_000_000n;
}

/** Batch prices of gpt-5-nano read from pricing.toml by hand (a tiny TOML reader). */
function nanoPrices() {
  const text = readFileSync(join(REPO, 'pricing.toml'), 'utf8');
  const block = text.split('[[models]]').find((b) => /\nid = "gpt-5-nano"\n/.test(b));
  const get = (k) => new RegExp(`\\n${k} = ([0-9.]+)`).exec(block)[1];
  const disc = /\[providers\.openai\]\nbatch_discount = ([0-9.]+)/.exec(text)[1];
  assert.equal(disc, '0.5', 'the test halves prices; update it if the discount changes');
  return { input: picoPerToken(get('input')) / 2n, output: picoPerToken(get('output')) / 2n, cached: picoPerToken(get('batch_cache_read')) };
}

function line(id, text) {
  return JSON.stringify({
    custom_id: id, method: 'POST', url: '/v1/chat/completions',
    body: { model: 'gpt-5-nano', messages: [{ role: 'user', content: text }], max_completion_tokens: 40 },
  });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'batchcost-node-oa-'));
  const sim = await start(['simulate', '--listen', '127.0.0.1:0', '--api-key', PROVIDER, '--time-scale', '3600', '--seed', '9'], {});
  writeFileSync(join(dir, 'batchcost.toml'), [
    'listen = "127.0.0.1:0"',
    `pricing = "${join(REPO, 'pricing.toml')}"`,
    'timezone = "Asia/Seoul"',
    '[storage]',
    `url = "sqlite://${join(dir, 'ledger.db')}"`,
    '[upstream.openai]',
    `base_url = "${sim}"`,
    'api_key_env = "NODE_PROVIDER_KEY"',
    '[admin]',
    'token_env = "NODE_ADMIN_TOKEN"',
    '[tracker]', 'poll_min_ms = 100', 'poll_max_ms = 1000',
    '[[projects]]', 'name = "alpha"', 'api_key_envs = ["NODE_ALPHA_KEY"]',
    '[[projects]]', 'name = "beta"', 'api_key_envs = ["NODE_BETA_KEY"]',
    '',
  ].join('\n'));
  gateway = await start(['serve', '--config', join(dir, 'batchcost.toml')], {
    NODE_PROVIDER_KEY: PROVIDER, NODE_ADMIN_TOKEN: ADMIN, NODE_ALPHA_KEY: KEYS.alpha, NODE_BETA_KEY: KEYS.beta,
  });
});

after(() => {
  for (const p of procs) p.kill('SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('two projects upload, create, poll and read their files; costs are exact', async () => {
  const price = nanoPrices();
  const jobs = {};
  for (const project of ['alpha', 'beta']) {
    const c = client(project);
    const lines = Array.from({ length: 6 }, (_, i) => line(`${project}-${i}`, `Question ${i} from ${project}`));
    lines[2] = JSON.stringify({ ...JSON.parse(lines[2]), body: { model: 'gpt-5-nano', max_completion_tokens: 5 } });
    const file = await c.files.create({ file: await toFile(Buffer.from(lines.join('\n') + '\n'), `${project}.jsonl`), purpose: 'batch' });
    assert.equal(file.purpose, 'batch');
    const batch = await c.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    jobs[project] = { c, file, batch, lines };
  }
  // Isolation: the other project's file and batch are 404s, and absent from its lists.
  await assert.rejects(client('beta').files.retrieve(jobs.alpha.file.id), (e) => e.status === 404);
  await assert.rejects(client('beta').batches.retrieve(jobs.alpha.batch.id), (e) => e.status === 404);
  const betaFiles = [];
  for await (const f of client('beta').files.list()) betaFiles.push(f.id);
  assert.deepEqual(betaFiles, [jobs.beta.file.id]);
  const betaBatches = [];
  for await (const b of client('beta').batches.list()) betaBatches.push(b.id);
  assert.deepEqual(betaBatches, [jobs.beta.batch.id]);

  for (const [project, { c, batch, lines }] of Object.entries(jobs)) {
    const ended = await waitEnded(c, batch.id);
    assert.equal(ended.status, 'completed');
    let pico = 0n;
    const seen = [];
    const out = await (await c.files.content(ended.output_file_id)).text();
    for (const raw of out.trim().split('\n')) {
      const l = JSON.parse(raw);
      const u = l.response.body.usage;
      const cached = BigInt(u.prompt_tokens_details?.cached_tokens ?? 0);
      pico += (BigInt(u.prompt_tokens) - cached) * price.input + cached * price.cached + BigInt(u.completion_tokens) * price.output;
      seen.push(l.custom_id);
    }
    const err = await (await c.files.content(ended.error_file_id)).text();
    const errored = err.trim().split('\n').map((r) => JSON.parse(r).custom_id);
    assert.deepEqual(errored, [`${project}-2`]);
    assert.deepEqual([...seen, ...errored].sort(), lines.map((l) => JSON.parse(l).custom_id).sort());
    await assert.rejects(client(project === 'alpha' ? 'beta' : 'alpha').files.content(ended.output_file_id), (e) => e.status === 404);
    const rec = await waitSettled(batch.id);
    const [whole, frac = ''] = rec.cost_usd.split('.');
    assert.equal(BigInt(whole + frac.padEnd(12, '0')), pico, `${project}: ${rec.cost_usd}`);
    assert.equal(rec.models[0].requests.errored, 1);
  }
  const budgets = await admin('/api/budgets');
  assert.ok(Array.isArray(budgets.budgets));
});
