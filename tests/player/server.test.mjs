// node --test server.test.mjs — the harness server's safety and Range handling.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtempSync, mkdirSync, writeFileSync, symlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, byteRange } from './server.mjs';

const base = mkdtempSync(join(tmpdir(), 'player-srv-'));
const root = join(base, 'out');
let server, port;
const log = [];

before(async () => {
  mkdirSync(join(root, 'v0'), { recursive: true });
  writeFileSync(join(root, 'master.m3u8'), '#EXTM3U\n');
  writeFileSync(join(root, 'v0', 'seg.m4s'), '0123456789');
  writeFileSync(join(base, 'secret.txt'), 'outside');
  symlinkSync(join(base, 'secret.txt'), join(root, 'link.txt'));
  server = await startServer(root, log);
  port = server.address().port;
});
after(() => { server.close(); rmSync(base, { recursive: true, force: true }); });

// Raw request: node's http client sends the path as given (no ".." normalisation like a browser).
const get = (path, headers = {}, method = 'GET') => new Promise((ok, ko) => {
  request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
    let body = '';
    res.on('data', (c) => { body += c; }).on('end', () => ok({ status: res.statusCode, headers: res.headers, body }));
  }).on('error', ko).end();
});

test('serves files with their media types', async () => {
  const r = await get('/master.m3u8');
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/vnd.apple.mpegurl');
  assert.equal((await get('/v0/seg.m4s')).headers['content-type'], 'video/iso.segment');
  assert.equal((await get('/__player/hls.html')).headers['content-type'], 'text/html; charset=utf-8');
  assert.equal((await get('/__player/dash.js')).status, 200);
});

test('rejects traversal, symlinks out of the dir and writes', async () => {
  assert.equal((await get('/../secret.txt')).status, 403);
  assert.equal((await get('/v0/%2e%2e/%2e%2e/secret.txt')).status, 403);
  assert.equal((await get('/v0/..%2f..%2fsecret.txt')).status, 403);
  assert.equal((await get('/link.txt')).status, 403);
  assert.equal((await get('/master.m3u8', {}, 'PUT')).status, 405);
  assert.equal((await get('/nope.ts')).status, 404);
});

test('answers byte ranges', async () => {
  let r = await get('/v0/seg.m4s', { Range: 'bytes=2-5' });
  assert.equal(r.status, 206);
  assert.equal(r.body, '2345');
  assert.equal(r.headers['content-range'], 'bytes 2-5/10');
  r = await get('/v0/seg.m4s', { Range: 'bytes=7-' });
  assert.deepEqual([r.status, r.body], [206, '789']);
  r = await get('/v0/seg.m4s', { Range: 'bytes=-3' });
  assert.deepEqual([r.status, r.body], [206, '789']);
  r = await get('/v0/seg.m4s', { Range: 'bytes=20-30' });
  assert.deepEqual([r.status, r.headers['content-range']], [416, 'bytes */10']);
  assert.equal(byteRange('bytes=0-1,4-5', 10), null); // multi-range: whole file (allowed by RFC 9110)
});
