// Browser side of play.mjs. Loaded as a classic <script> after hls.js or dash.js.
// Every check below reads state that the player or the <video> element reports;
// play.mjs only starts this and prints what it returns.
'use strict';
(() => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // Partial results live on window so play.mjs can still read them after a timeout.
  const R = (window.__result = {
    player: null, url: null, checks: {}, levels: [], audioTracks: [], audioSwitched: null,
    textTracks: [], cues: null, firstCue: null, reachedEnd: null, duration: null, errors: [],
  });
  const fatals = () => R.errors.filter((e) => e.fatal).length;
  const check = (name, ok, detail = {}) => { R.checks[name] = { ok: !!ok, ...detail }; return !!ok; };

  // Poll until pred() holds; gives up after ms or as soon as the player raises a new fatal
  // error (an older one, e.g. a missing subtitle file, must not cut short an unrelated step).
  // No step may run past the overall --timeout: hitting it is recorded as a fatal error.
  let overallEnd = Infinity;
  async function until(pred, ms) {
    const end = Math.min(Date.now() + ms, overallEnd), before = fatals();
    for (;;) {
      if (pred()) return true;
      if (fatals() > before) return false;
      if (Date.now() >= end) {
        if (end === overallEnd && !R.errors.some((e) => e.source === 'harness')) {
          R.errors.push({ source: 'harness', fatal: true, message: '--timeout reached' });
        }
        return false;
      }
      await sleep(100);
    }
  }

  // Counts seconds actually played: small forward steps of currentTime while not seeking.
  // Seeks and player "jumps" (e.g. to the start position) are big steps and are not counted.
  function progressMeter(video) {
    let last = video.currentTime, total = 0;
    setInterval(() => {
      const t = video.currentTime, d = t - last;
      if (!video.seeking && d > 0 && d < 0.5) total += d;
      last = t;
    }, 100);
    return () => total;
  }

  // ---- hls.js ------------------------------------------------------------------------------
  function hlsAdapter(video) {
    if (!Hls.isSupported()) throw new Error('hls.js says MSE is not supported in this browser');
    const E = Hls.Events;
    const hls = new Hls({ subtitleDisplay: false });
    const seen = { parsed: false, audioSwitchedTo: null, audioBuffered: new Set(), subtitleFrags: 0 };
    hls.on(E.ERROR, (_, d) => R.errors.push({
      source: 'hls.js', fatal: !!d.fatal, type: d.type, details: d.details,
      message: d.error?.message ?? d.reason ?? null,
      // The XHR's own URL names the file that failed (for an init segment, frag.url is the media segment).
      url: d.networkDetails?.responseURL || d.context?.url || d.frag?.url || d.url || null,
    }));
    hls.on(E.MANIFEST_PARSED, () => { seen.parsed = true; });
    hls.on(E.AUDIO_TRACK_SWITCHED, (_, d) => { seen.audioSwitchedTo = d.id; });
    // frag.level of an audio fragment is the audio track index: proves that track's data was appended.
    hls.on(E.FRAG_BUFFERED, (_, d) => { if (d.frag.type === 'audio') seen.audioBuffered.add(d.frag.level); });
    hls.on(E.SUBTITLE_FRAG_PROCESSED, (_, d) => { if (d.success) seen.subtitleFrags++; });
    return {
      manifest: 'master.m3u8', version: Hls.version,
      load(url) { hls.attachMedia(video); hls.loadSource(url); },
      loaded: () => seen.parsed,
      levels: () => hls.levels.map((l) => ({
        width: l.width, height: l.height, bitrate: l.bitrate,
        codecs: [l.videoCodec, l.audioCodec].filter(Boolean).join(','),
      })),
      audioTracks: () => hls.audioTracks.map((t) => ({ lang: t.lang ?? null, name: t.name ?? null })),
      currentAudio: () => hls.audioTrack,
      switchAudio(i) { hls.audioTrack = i; },
      audioSwitchReported: (i) => seen.audioSwitchedTo === i && seen.audioBuffered.has(i),
      textTracks: () => hls.subtitleTracks.map((t) => ({ lang: t.lang ?? null, name: t.name ?? null })),
      enableText(i) { hls.subtitleDisplay = true; hls.subtitleTrack = i; },
      currentText: () => hls.subtitleTrack,
      seek(t) { video.currentTime = t; },
      destroy() { hls.destroy(); },
    };
  }

  // ---- dash.js (v5 API) ----------------------------------------------------------------------
  function dashAdapter(video) {
    const E = dashjs.MediaPlayer.events;
    const player = dashjs.MediaPlayer().create();
    const seen = { initialized: false, renderedAudio: null };
    player.updateSettings({ debug: { logLevel: dashjs.Debug.LOG_LEVEL_WARNING } });
    // dash.js has no "fatal" flag: it only raises ERROR once its own retries are exhausted.
    player.on(E.ERROR, (e) => R.errors.push({
      source: 'dash.js', fatal: true, code: e.error?.code ?? null, message: e.error?.message ?? String(e.error),
    }));
    player.on(E.PLAYBACK_ERROR, (e) => R.errors.push({
      source: 'dash.js', fatal: true, message: 'playbackError: ' + (e.error?.message ?? e.error ?? ''),
    }));
    player.on(E.STREAM_INITIALIZED, () => { seen.initialized = true; });
    // Fired when media of the newly selected track is actually being played out.
    player.on(E.TRACK_CHANGE_RENDERED, (e) => { if (e.mediaType === 'audio') seen.renderedAudio = e.newMediaInfo?.id ?? null; });
    const audio = () => player.getTracksFor('audio');
    const info = (t) => ({ lang: t.lang ?? null, name: t.labels?.[0]?.text ?? null, id: t.id });
    return {
      manifest: 'manifest.mpd', version: player.getVersion(),
      load(url) { player.initialize(video, url, false); },
      loaded: () => seen.initialized,
      levels: () => player.getRepresentationsByType('video').map((r) => ({
        width: r.width, height: r.height, bitrate: r.bandwidth, codecs: r.codecs,
      })),
      audioTracks: () => audio().map(info),
      currentAudio: () => { const c = player.getCurrentTrackFor('audio'); return audio().findIndex((t) => t.id === c?.id); },
      switchAudio(i) { player.setCurrentTrack(audio()[i]); },
      audioSwitchReported: (i) => seen.renderedAudio !== null && seen.renderedAudio === audio()[i].id,
      textTracks: () => player.getTracksFor('text').map(info),
      enableText(i) { player.enableText(true); player.setTextTrack(i); },
      currentText: () => player.getCurrentTextTrackIndex(),
      seek(t) { player.seek(t); },
      destroy() { player.destroy(); },
    };
  }

  // First text track of the <video>, in the selected language, that the player filled with cues.
  function cueTrack(video, lang) {
    for (const tt of video.textTracks) {
      if (lang && tt.language && tt.language !== lang) continue;
      if (tt.mode !== 'disabled' && ((tt.cues && tt.cues.length) || (tt.activeCues && tt.activeCues.length))) return tt;
    }
    return null;
  }

  window.runHarness = async (o) => {
    R.player = o.player;
    const video = document.querySelector('video');
    overallEnd = o.deadline - 1000; // leaves play.mjs time to collect the result
    let ended = false;
    video.addEventListener('ended', () => { ended = true; });
    video.addEventListener('error', () => R.errors.push({
      source: 'video', fatal: true, code: video.error?.code ?? null, message: video.error?.message ?? null,
    }));
    const played = progressMeter(video);
    const p = o.player === 'hls' ? hlsAdapter(video) : dashAdapter(video);
    R.url = new URL(p.manifest, location.origin + '/').href;
    R.playerVersion = p.version;

    // 1. Loads and plays: at least 1 s of real playback and decoded video frames.
    p.load(R.url);
    const loaded = await until(p.loaded, 20000);
    if (loaded) video.play().catch((e) => R.errors.push({ source: 'video', fatal: false, message: 'play(): ' + e.message }));
    const playing = loaded && await until(() => played() >= 1 && video.currentTime > 1 && !video.paused, 20000);
    check('play', playing && video.webkitVideoDecodedByteCount > 0, {
      loaded, played: +played().toFixed(2), currentTime: video.currentTime,
      videoSize: `${video.videoWidth}x${video.videoHeight}`,
      videoDecodedBytes: video.webkitVideoDecodedByteCount, audioDecodedBytes: video.webkitAudioDecodedByteCount,
    });
    R.duration = Number.isFinite(video.duration) ? video.duration : null;
    if (!R.checks.play.ok) return R;

    // 2. Video levels / representations as the player parsed them.
    R.levels = p.levels();
    check('levels', R.levels.length > 0 && R.levels.every((l) => l.width > 0 && l.height > 0 && l.bitrate > 0),
      { count: R.levels.length });

    // 3. Audio tracks (alternate renditions / adaptation sets). Muxed-only audio lists none in hls.js.
    R.audioTracks = p.audioTracks();
    const curAudio = p.currentAudio();
    R.currentAudioTrack = curAudio;  // reported only; the switch below is the check

    // 4. Audio switch: the player must report the new track and playback must go on for 1 s more.
    if (o.switchAudio) {
      const target = R.audioTracks.findIndex((_, i) => i !== curAudio);
      let reported = false, keptPlaying = false, now = null;
      if (target >= 0) {
        p.switchAudio(target);
        reported = await until(() => p.audioSwitchReported(target) && p.currentAudio() === target, 20000);
        now = p.currentAudio();
        const base = played();
        keptPlaying = reported && await until(() => played() >= base + 1 && !video.paused, 15000);
      }
      R.audioSwitched = reported && keptPlaying;
      check('switchAudio', R.audioSwitched, {
        from: R.audioTracks[curAudio] ?? null, to: R.audioTracks[target] ?? null, reported, current: now, keptPlaying,
        ...(target < 0 && { reason: 'fewer than 2 audio tracks' }),
      });
    }

    // 5. Subtitles: enable the first text track and wait for cues in the <video>'s TextTrack.
    if (o.subtitles) {
      R.textTracks = p.textTracks();
      let tt = null;
      if (R.textTracks.length) {
        p.enableText(0);
        await until(() => (tt = cueTrack(video, R.textTracks[0].lang)) !== null, 20000);
      }
      R.cues = tt ? tt.cues.length : 0;
      const first = tt?.cues[0] ?? tt?.activeCues[0];
      R.firstCue = first ? first.text : null;
      check('subtitles', R.cues > 0 && R.firstCue !== null, {
        tracks: R.textTracks.length, current: R.textTracks.length ? p.currentText() : null,
        track: tt && { kind: tt.kind, label: tt.label, language: tt.language, mode: tt.mode },
        firstCueTime: first ? [first.startTime, first.endTime] : null,
        activeCues: tt?.activeCues?.length ?? 0,
        ...(!R.textTracks.length && { reason: 'player lists no text track' }),
      });
    }

    // 6. Seek to 1.5 s before the end and wait for `ended` (or the playhead within 0.3 s of the end).
    if (o.seekEnd) {
      const d = video.duration;
      let ok = false;
      if (Number.isFinite(d) && d > 2) {
        ended = false;
        p.seek(d - 1.5);
        if (video.paused) video.play().catch(() => {});
        ok = await until(() => ended || video.currentTime >= d - 0.3, 20000);
        // Only to report whether `ended` fired too; not through until() so it cannot time out.
        for (let i = 0; ok && !ended && i < 15 && Date.now() < overallEnd; i++) await sleep(100);
      }
      R.reachedEnd = ok;
      check('seekEnd', ok, { duration: d, seekTo: d - 1.5, currentTime: video.currentTime, endedEvent: ended });
    }
    R.duration = Number.isFinite(video.duration) ? video.duration : null;
    try { p.destroy(); } catch { /* teardown trouble must not hide the results */ }
    return R;
  };
})();
