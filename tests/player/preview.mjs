#!/usr/bin/env node
// Drives the `transcoder preview` page in headless Chromium and prints one JSON line with what
// the page's test API (window.preview) reported. Exit 0 only if every check passed.
//
//   node preview.mjs --url http://127.0.0.1:PORT/ --player hls|dash [--timeout 60]
//
// Every check reads the player's or the <video>'s state through window.preview, or the DOM;
// the only thing this script decides is which controls to use and how long to wait.
import { parseArgs } from 'node:util';
import { openPage } from './browser.mjs';

function parse(argv) {
  const { values } = parseArgs({
    args: argv, strict: true,
    options: { url: { type: 'string' }, player: { type: 'string' }, timeout: { type: 'string', default: '60' } },
  });
  const timeout = Number(values.timeout);
  if (!values.url) throw new Error('--url is required');
  new URL(values.url); // throws on a malformed URL
  if (!['hls', 'dash'].includes(values.player)) throw new Error('--player must be hls or dash');
  if (!(timeout > 0)) throw new Error('--timeout must be a positive number of seconds');
  return { ...values, timeout };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const withTimeout = (p, ms, fallback) =>
  Promise.race([p, new Promise((r) => setTimeout(() => r(fallback), Math.max(0, ms)).unref())]);

async function main() {
  let opts;
  try { opts = parse(process.argv.slice(2)); } catch (e) {
    return { ok: false, player: null, checks: {}, state: null, errors: [{ source: 'usage', fatal: true, message: e.message }] };
  }
  const started = Date.now();
  const deadline = started + opts.timeout * 1000;
  const pageErrors = [], checks = {};
  const check = (name, ok, detail = {}) => { checks[name] = { ok: !!ok, ...detail }; return !!ok; };
  let browser, page, state = null;

  const url = new URL(opts.url);
  url.searchParams.set('player', opts.player);
  const st = () => page.evaluate(() => window.preview.state());
  // Polls the page state until pred(state) holds, for at most ms and never past --timeout (less
  // 2 s to collect the result); hitting --timeout is recorded, so a cut-short wait is not silent.
  async function until(pred, ms) {
    const end = Math.min(Date.now() + ms, deadline - 2000);
    for (;;) {
      const s = await st();
      if (pred(s)) return s;
      if (Date.now() >= end) {
        if (end === deadline - 2000 && !pageErrors.some((e) => e.source === 'driver')) {
          pageErrors.push({ source: 'driver', fatal: true, message: `--timeout ${opts.timeout}s reached` });
        }
        return null;
      }
      await sleep(200);
    }
  }

  const run = async () => {
    ({ browser, page } = await openPage(pageErrors));
    await page.goto(url.href, { waitUntil: 'load' });

    // 1. Ready: the player parsed the manifest and the <video> is really playing.
    const ready = await until((s) => s.ready, 20000);
    if (!check('ready', ready, { waitedFor: 'manifest parsed and playback started' })) return;

    // 2. The rung table lists one row with a picture per level the player parsed.
    check('rungTable', ready.levels.length > 0 && ready.rungsListed === ready.levels.length,
      { rows: ready.rungsListed, levels: ready.levels.length });

    // 3. Lowest level: the decoded picture (videoHeight) or the player's current level must reach
    //    its height. If that height already plays, go to the top level first, so the switch is real.
    const lv = ready.levels, byHeight = (a, b) => lv[a].height - lv[b].height;
    const idx = lv.map((_, i) => i).sort(byHeight), low = idx[0], high = idx.at(-1);
    const heightOf = (s) => s.levels[s.currentLevel]?.height ?? null;
    let via = null;
    if (ready.videoHeight === lv[low].height && lv[high].height !== lv[low].height) {
      await page.evaluate((i) => window.preview.selectLevel(i), high);
      via = await until((s) => s.videoHeight === lv[high].height, 15000) ? lv[high].height : 'top level not reached';
    }
    // The decoded picture is the stronger proof, so it is waited for first; a player's current level
    // (which may follow the request before the picture does) is the fallback.
    await page.evaluate((i) => window.preview.selectLevel(i), low);
    const byPicture = await until((s) => s.videoHeight === lv[low].height, 15000);
    const s2 = byPicture ?? await st();
    const by = byPicture ? 'videoHeight' : heightOf(s2) === lv[low].height ? 'currentLevel' : null;
    check('lowestLevel', by, {
      level: low, height: lv[low].height, ...(via && { firstWentTo: via }), videoHeight: s2.videoHeight,
      currentLevel: s2.currentLevel, autoLevel: s2.autoLevel, by,
    });

    // 4. Audio: with 2+ tracks, select another one; the player must report the switch (its
    //    switched/rendered event and its current track) and playback must go on.
    const s3 = await st();
    if (s3.audioTracks.length >= 2) {
      const target = s3.audioTracks.findIndex((_, i) => i !== s3.audioTrack);
      await page.evaluate((i) => window.preview.selectAudio(i), target);
      const sw = await until((s) => s.audioTrack === target && s.audioSwitchedTo === target, 15000);
      const t0 = sw?.currentTime;
      const moving = sw && await until((s) => s.currentTime > t0 + 0.5, 10000);
      const s = await st();
      check('audio', sw && moving, {
        from: s3.audioTracks[s3.audioTrack] ?? null, to: s3.audioTracks[target], audioTrack: s.audioTrack,
        audioSwitchedTo: s.audioSwitchedTo, keptPlaying: !!moving,
      });
    } else check('audio', true, { skipped: `${s3.audioTracks.length} audio track(s)` });

    // 5. Subtitles: seek to 1 s, select the first text track; its cues must load or be active.
    if (s3.textTracks.length >= 1) {
      await page.evaluate(() => window.preview.seek(1));
      await page.evaluate(() => window.preview.selectText(0));
      const got = await until((s) => s.textTrack === 0 && (s.activeCueTexts.length > 0 || s.textCues > 0), 15000);
      const s = got ?? await st();
      check('subtitles', got, { track: s3.textTracks[0], textTrack: s.textTrack, activeCueTexts: s.activeCueTexts, textCues: s.textCues });
    } else check('subtitles', true, { skipped: 'no text track' });

    // 6. Thumbnails: the vtt is fetched here too, so a page that failed to read it cannot pass by
    //    "skipping". showThumbnailAt(1) must give a cue whose sprite really loads and holds the
    //    cue's region, and #thumb must show exactly that; a real mouse hover must do the same.
    const vtt = await page.evaluate(async () => (await fetch('media/thumbnails.vtt')).status);
    const s5 = await st();
    if (s5.thumbnails > 0 || vtt === 200) {
      const shown = () => page.evaluate(() => {
        const cs = getComputedStyle(document.querySelector('#thumb'));
        return { display: cs.display, backgroundImage: cs.backgroundImage, backgroundPosition: cs.backgroundPosition,
          width: cs.width, height: cs.height, label: document.querySelector('#thumb').textContent };
      });
      const shows = (v, c) => !!c && v.display !== 'none' && v.backgroundImage.includes(new URL(c.url).pathname)
        && v.backgroundPosition === `${-c.x}px ${-c.y}px` && v.width === `${c.w}px` && v.height === `${c.h}px`;
      const cueAt = (t) => page.evaluate((x) => window.preview.showThumbnailAt(x), t);

      const cue = await cueAt(1);
      const atOne = await shown();
      const img = cue && await page.evaluate((src) => new Promise((ok) => {
        const im = new Image();
        im.onload = () => ok({ loaded: true, naturalWidth: im.naturalWidth, naturalHeight: im.naturalHeight });
        im.onerror = () => ok({ loaded: false, naturalWidth: im.naturalWidth, naturalHeight: im.naturalHeight });
        im.src = src;
      }), cue.url);
      const spriteOk = !!img?.loaded && img.naturalWidth > 0 && cue.w > 0 && cue.h > 0
        && cue.x + cue.w <= img.naturalWidth && cue.y + cue.h <= img.naturalHeight;

      // Hover 60 % along the seek bar; the cue for that time (±0.05 s, for pixel rounding) must show.
      const box = await (await page.$('#seek')).boundingBox();
      await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
      const hovered = await shown();
      const t = 0.6 * (s5.duration ?? 0);
      const hoverOk = shows(hovered, await cueAt(t - 0.05)) || shows(hovered, await cueAt(t + 0.05));
      check('thumbnails', cue && spriteOk && shows(atOne, cue) && hoverOk, {
        cues: s5.thumbnails, vttStatus: vtt, cue, sprite: img, shownAt1: atOne, spriteOk, shownAt1Ok: shows(atOne, cue),
        hover: { time: +t.toFixed(2), ...hovered }, hoverOk,
      });
    } else check('thumbnails', true, { skipped: `no thumbnails (vtt HTTP ${vtt})`, cues: s5.thumbnails });
  };

  try {
    const running = run();
    running.catch(() => {}); // after a timeout its rejection (browser closed) is expected
    const r = await withTimeout(running.then(() => 'done'), deadline - Date.now(), 'timeout');
    if (r === 'timeout') pageErrors.push({ source: 'driver', fatal: true, message: `timeout after ${opts.timeout}s` });
  } catch (e) {
    pageErrors.push({ source: 'driver', fatal: true, message: e.message });
  }
  // Whatever the page had found is worth reporting, also after a failure or a timeout.
  if (page) state = await withTimeout(st().catch(() => null), 3000, null);
  if (browser) {
    const proc = browser.process();
    await withTimeout(browser.close().catch(() => {}), 5000);
    proc?.kill('SIGKILL'); // no-op when close() already ended it
  }

  // A fatal player error is a failure on its own, even if every check above happened to pass.
  const fatal = (state?.errors ?? []).filter((e) => e.fatal);
  check('noFatalErrors', fatal.length === 0, { count: fatal.length });
  // Retries repeat the same error many times: keep each distinct one once, with a count.
  const seen = new Map();
  for (const e of [...(state?.errors ?? []), ...pageErrors]) {
    const key = JSON.stringify(e);
    if (seen.has(key)) seen.get(key).count++; else seen.set(key, { ...e, count: 1 });
  }
  const errors = [...seen.values()];
  const ok = Object.values(checks).every((c) => c.ok) && 'ready' in checks && !errors.some((e) => e.fatal);
  return { ok, player: opts.player, url: url.href, checks, state, errors, seconds: +((Date.now() - started) / 1000).toFixed(1) };
}

const out = await main();
process.stdout.write(JSON.stringify(out) + '\n');
process.exit(out.ok ? 0 : 1);
