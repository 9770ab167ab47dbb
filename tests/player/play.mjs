#!/usr/bin/env node
// Plays a transcoder output folder in headless Chromium with hls.js or dash.js and prints
// one JSON line with what the player reported. Exit 0 only if every requested check passed.
//
//   node play.mjs --dir OUT_DIR --player hls|dash [--switch-audio] [--subtitles] [--seek-end] [--timeout 60]
import { promises as fsp } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { openPage } from './browser.mjs';
import { startServer } from './server.mjs';

function parse(argv) {
  const { values } = parseArgs({
    args: argv, strict: true,
    options: {
      dir: { type: 'string' }, player: { type: 'string' }, timeout: { type: 'string', default: '60' },
      'switch-audio': { type: 'boolean', default: false }, subtitles: { type: 'boolean', default: false },
      'seek-end': { type: 'boolean', default: false },
    },
  });
  const timeout = Number(values.timeout);
  if (!values.dir) throw new Error('--dir is required');
  if (!['hls', 'dash'].includes(values.player)) throw new Error('--player must be hls or dash');
  if (!(timeout > 0)) throw new Error('--timeout must be a positive number of seconds');
  return { ...values, timeout };
}

const withTimeout = (p, ms, fallback) =>
  Promise.race([p, new Promise((r) => setTimeout(() => r(fallback), ms).unref())]);

async function main() {
  let opts;
  try { opts = parse(process.argv.slice(2)); } catch (e) {
    return { ok: false, errors: [{ source: 'usage', fatal: true, message: e.message }] };
  }
  const started = Date.now();
  const deadline = started + opts.timeout * 1000;
  const httpLog = [], pageErrors = [];
  let server, browser, page, timedOut = false, result = null;

  try {
    const st = await fsp.stat(opts.dir).catch(() => null);
    if (!st?.isDirectory()) throw new Error(`--dir ${opts.dir} is not a directory`);
    server = await startServer(resolve(opts.dir), httpLog);
    const origin = `http://127.0.0.1:${server.address().port}`;

    const run = async () => {
      ({ browser, page } = await openPage(pageErrors));
      await page.goto(`${origin}/__player/${opts.player}.html`, { waitUntil: 'load' });
      return page.evaluate((o) => window.runHarness(o), {
        player: opts.player, switchAudio: opts['switch-audio'], subtitles: opts.subtitles,
        seekEnd: opts['seek-end'], deadline,
      });
    };
    const running = run();
    running.catch(() => {}); // after a timeout its rejection (browser closed) is expected
    result = await withTimeout(running, deadline - Date.now(), 'timeout');
    if (result === 'timeout') {
      timedOut = true;
      // Whatever the page had found so far is still worth reporting.
      result = page ? await withTimeout(page.evaluate(() => window.__result).catch(() => null), 3000, null) : null;
    }
  } catch (e) {
    pageErrors.push({ source: 'harness', fatal: true, message: e.message });
  } finally {
    if (browser) {
      const proc = browser.process();
      await withTimeout(browser.close().catch(() => {}), 5000);
      proc?.kill('SIGKILL'); // no-op when close() already ended it
    }
    if (server) { server.closeAllConnections(); server.close(); }
  }

  const r = result ?? {};
  // Retries repeat the same error many times: keep each distinct one once, with a count.
  const seen = new Map();
  for (const e of [
    ...(r.errors ?? []), ...pageErrors,
    ...httpLog.map((h) => ({ source: 'http', fatal: false, ...h })),
    ...(timedOut ? [{ source: 'harness', fatal: true, message: `timeout after ${opts.timeout}s` }] : []),
  ]) {
    const key = JSON.stringify(e);
    if (seen.has(key)) seen.get(key).count++; else seen.set(key, { ...e, count: 1 });
  }
  const errors = [...seen.values()];
  const wanted = ['play', 'levels', ...(opts['switch-audio'] ? ['switchAudio'] : []),
    ...(opts.subtitles ? ['subtitles'] : []), ...(opts['seek-end'] ? ['seekEnd'] : [])];
  const checks = r.checks ?? {};
  const failed = wanted.filter((c) => !checks[c]?.ok);
  return {
    ok: failed.length === 0 && !errors.some((e) => e.fatal),
    player: opts.player, playerVersion: r.playerVersion ?? null, dir: resolve(opts.dir), failed,
    levels: r.levels ?? [], audioTracks: r.audioTracks ?? [], audioSwitched: r.audioSwitched ?? null,
    textTracks: r.textTracks ?? [], cues: r.cues ?? null, firstCue: r.firstCue ?? null,
    reachedEnd: r.reachedEnd ?? null, duration: r.duration ?? null,
    checks, errors, seconds: +((Date.now() - started) / 1000).toFixed(1),
  };
}

const out = await main();
process.stdout.write(JSON.stringify(out) + '\n');
process.exit(out.ok ? 0 : 1);
