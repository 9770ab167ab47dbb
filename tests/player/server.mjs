// Read-only loopback HTTP server for play.mjs: serves OUT_DIR at / and the harness page and
// player libraries under /__player/. GET/HEAD only, single byte ranges, no path escaping OUT_DIR.
import { createServer } from 'node:http';
import { createReadStream, promises as fsp, realpathSync } from 'node:fs';
import { dirname, extname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

export const TYPES = {
  '.m3u8': 'application/vnd.apple.mpegurl', '.mpd': 'application/dash+xml',
  '.m4s': 'video/iso.segment', '.mp4': 'video/mp4', '.m4v': 'video/mp4', '.m4a': 'audio/mp4',
  '.cmfv': 'video/mp4', '.cmfa': 'audio/mp4', '.ts': 'video/mp2t', '.aac': 'audio/aac',
  '.vtt': 'text/vtt', '.webvtt': 'text/vtt', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.png': 'image/png',
  '.js': 'text/javascript', '.html': 'text/html; charset=utf-8', '.json': 'application/json',
};

// Harness files live under /__player/ so they cannot clash with ordinary output names.
const LIBS = {
  hls: join(HERE, 'node_modules/hls.js/dist/hls.min.js'),
  // The UMD build sets the global `dashjs`; the package's "script" export points at it too.
  dash: join(HERE, 'node_modules/dashjs/dist/modern/umd/dash.all.min.js'),
};
const pageHtml = (player) => `<!doctype html><meta charset="utf-8"><title>player harness</title><link rel="icon" href="data:,">
<video muted playsinline width="640" height="360"></video>
<script src="/__player/${player}.js"></script><script src="/__player/harness.js"></script>`;

// Parses a single-range "bytes=a-b" header against a file size. Returns null for "serve whole
// file" (no or multi-range header), {start,end} when satisfiable, or false for 416.
export function byteRange(header, size) {
  if (!header || header.includes(',')) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return false;
  let start, end;
  if (m[1] === '') { start = Math.max(0, size - Number(m[2])); end = size - 1; } // suffix: last N bytes
  else { start = Number(m[1]); end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1); }
  return start <= end && start < size ? { start, end } : false;
}

// Read-only static server for OUT_DIR plus the harness page and player libraries.
export function startServer(root, log) {
  const realRoot = realpathSync(root);
  const server = createServer(async (req, res) => {
    const fail = (code, why) => { log.push({ status: code, url: req.url, why }); res.writeHead(code).end(); };
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405, 'read-only');
      const rawPath = req.url.split('?')[0];
      let rel;
      try { rel = decodeURIComponent(rawPath); } catch { return fail(400, 'bad escape'); }
      // Reject any ".." segment outright (also encoded ones), before any normalisation.
      if (rel.includes('\0') || rel.includes('\\') || rel.split('/').includes('..')) return fail(403, 'traversal');

      let file, body;
      const harness = /^\/__player\/(hls|dash|harness)(\.html|\.js)$/.exec(rel);
      if (harness) {
        const [, name, ext] = harness;
        if (ext === '.html' && name !== 'harness') body = Buffer.from(pageHtml(name));
        else if (ext === '.js') file = name === 'harness' ? join(HERE, 'harness.js') : LIBS[name];
        else return fail(404, 'no such harness file');
      } else {
        file = join(realRoot, rel);
        // Symlinks must not lead out of OUT_DIR either.
        const real = await fsp.realpath(file).catch(() => null);
        if (!real) return fail(404, 'not found');
        if (real !== realRoot && !real.startsWith(realRoot + sep)) return fail(403, 'outside dir');
        file = real;
      }

      const ext = body ? '.html' : extname(harness ? file : rel).toLowerCase();
      const type = TYPES[ext] ?? 'application/octet-stream';
      const headers = { 'Content-Type': type, 'Accept-Ranges': 'bytes', 'Cache-Control': 'no-store' };
      if (body) {
        res.writeHead(200, { ...headers, 'Content-Length': body.length });
        return res.end(req.method === 'HEAD' ? undefined : body);
      }
      const st = await fsp.stat(file);
      if (!st.isFile()) return fail(404, 'not a file');
      const range = byteRange(req.headers.range, st.size);
      if (range === false) {
        log.push({ status: 416, url: req.url, why: `range ${req.headers.range} of ${st.size}` });
        return res.writeHead(416, { 'Content-Range': `bytes */${st.size}` }).end();
      }
      const { start, end } = range ?? { start: 0, end: st.size - 1 };
      res.writeHead(range ? 206 : 200, {
        ...headers, 'Content-Length': Math.max(0, end - start + 1),
        ...(range && { 'Content-Range': `bytes ${start}-${end}/${st.size}` }),
      });
      if (req.method === 'HEAD' || st.size === 0) return res.end();
      createReadStream(file, { start, end }).on('error', () => res.destroy()).pipe(res);
    } catch (e) {
      if (!res.headersSent) fail(500, e.message); else res.destroy();
    }
  });
  return new Promise((ok, ko) => server.once('error', ko).listen(0, '127.0.0.1', () => ok(server)));
}
