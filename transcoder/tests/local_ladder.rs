//! `transcoder local` on real sources made with ffmpeg, checked with ffprobe and by parsing
//! the playlists: sizes, codecs, keyframe alignment, duration, bandwidth, poster, manifest.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// What a valid job must have produced, whatever the source.
struct Expect<'a> {
    sizes: &'a [(u64, u64)],
    duration_s: f64,
    audio: bool,
}

/// The checks every successful job must pass, in CMAF (the default) or MPEG-TS.
fn check_outputs(out: &Path, want: &Expect<'_>) {
    // The master: one variant per rung, best first, with every attribute players need (and
    // with CMAF, I-frame playlists and an audio-only variant, checked by the CMAF tests).
    let cmaf = out.join("manifest.mpd").is_file();
    let mut master = master_playlist(&out.join("master.m3u8"));
    master
        .variants
        .retain(|v| !v.is_i_frame && v.resolution.is_some());
    let got_sizes: Vec<(u64, u64)> = master
        .variants
        .iter()
        .map(|v| {
            let r = v.resolution.expect("RESOLUTION");
            (r.width, r.height)
        })
        .collect();
    assert_eq!(got_sizes, want.sizes, "rung sizes");

    let mut segment_grids = Vec::new();
    let mut keyframe_grids = Vec::new();
    for variant in &master.variants {
        let playlist_path = out.join(&variant.uri);
        let media = media_playlist(&playlist_path);
        assert!(media.end_list, "{}: a VOD playlist ends", variant.uri);
        assert_eq!(
            media.playlist_type,
            Some(m3u8_rs::MediaPlaylistType::Vod),
            "{}",
            variant.uri
        );

        // Duration within half a second of the source.
        let total: f64 = media.segments.iter().map(|s| f64::from(s.duration)).sum();
        assert!(
            (total - want.duration_s).abs() <= 0.5,
            "{}: {total} s against a {} s source",
            variant.uri,
            want.duration_s
        );

        // BANDWIDTH is at least the peak segment bitrate: every segment long enough to be
        // measured on its own (RFC 8216bis: at least half the target duration) fits under it.
        let dir = playlist_path.parent().unwrap();
        let target = media.target_duration as f64;
        for s in &media.segments {
            let bits = std::fs::metadata(dir.join(&s.uri)).unwrap().len() as f64 * 8.0;
            let rate = bits / f64::from(s.duration);
            if f64::from(s.duration) >= 0.5 * target {
                assert!(
                    variant.bandwidth as f64 >= rate.floor(),
                    "{}: BANDWIDTH {} < segment {} at {rate}",
                    variant.uri,
                    variant.bandwidth,
                    s.uri
                );
            }
        }
        let average = variant.average_bandwidth.expect("AVERAGE-BANDWIDTH");
        assert!(
            average <= variant.bandwidth && average > 0,
            "{}",
            variant.uri
        );
        assert!(variant.frame_rate.expect("FRAME-RATE") > 0.0);

        // The segments are what the master says: H.264 High 8-bit 4:2:0, square pixels, the
        // rung's size, and the CODECS string matches the real profile and level. Read through
        // the playlist: a CMAF segment needs its init segment.
        let video = stream(&playlist_path, "video").expect("a video stream");
        assert_eq!(video["codec_name"], "h264");
        assert_eq!(video["pix_fmt"], "yuv420p", "{}", variant.uri);
        let (w, h) = (
            video["width"].as_u64().unwrap(),
            video["height"].as_u64().unwrap(),
        );
        let r = variant.resolution.unwrap();
        assert_eq!((w, h), (r.width, r.height));
        assert!(
            matches!(video["sample_aspect_ratio"].as_str(), None | Some("1:1")),
            "{}: square pixels, got {}",
            variant.uri,
            video["sample_aspect_ratio"]
        );
        // x264 writes the lowest profile its settings need (ultrafast has no CABAC, so
        // Constrained Baseline); CODECS must name the one really written.
        let profile_idc = match video["profile"].as_str().unwrap() {
            "High" => "64",
            "Main" => "4d",
            "Constrained Baseline" => "42",
            other => panic!("unexpected H.264 profile {other}"),
        };
        let level = video["level"].as_u64().unwrap();
        let codecs = variant.codecs.clone().expect("CODECS");
        assert!(
            codecs.starts_with(&format!("avc1.{profile_idc}"))
                && codecs[9..11] == format!("{level:02x}"),
            "{codecs} vs {} level {level}",
            video["profile"]
        );
        // The audio: muxed into every rung with MPEG-TS, a rendition of its own with CMAF.
        let audio = match cmaf {
            false => stream(&playlist_path, "audio"),
            true => master
                .alternatives
                .iter()
                .find(|a| a.media_type == m3u8_rs::AlternativeMediaType::Audio)
                .and_then(|a| stream(&out.join(a.uri.as_deref().unwrap()), "audio")),
        };
        if want.audio {
            let audio = audio.expect("audio");
            assert_eq!(audio["codec_name"], "aac");
            assert_eq!(audio["channels"], 2);
            assert!(codecs.ends_with(",mp4a.40.2"), "{codecs}");
        } else {
            assert!(audio.is_none(), "video-only source gives video-only rungs");
            assert!(!codecs.contains("mp4a"), "{codecs}");
        }

        segment_grids.push(
            media
                .segments
                .iter()
                .map(|s| s.duration.to_string())
                .collect::<Vec<_>>(),
        );
        keyframe_grids.push(keyframe_times(&playlist_path));
    }

    // Players switch cleanly only if every rung cuts its segments at the same instants and
    // has its keyframes at the same instants.
    assert!(
        segment_grids.windows(2).all(|w| w[0] == w[1]),
        "segment boundaries differ: {segment_grids:?}"
    );
    assert!(
        keyframe_grids.windows(2).all(|w| w[0] == w[1]),
        "keyframes differ: {keyframe_grids:?}"
    );
    assert!(keyframe_grids[0].len() >= segment_grids[0].len());

    // The poster is a JPEG of the top rung's size.
    let poster = stream(&out.join("poster.jpg"), "video").expect("poster");
    assert_eq!(poster["codec_name"], "mjpeg");
    let top = want.sizes[0];
    assert_eq!(
        (
            poster["width"].as_u64().unwrap(),
            poster["height"].as_u64().unwrap()
        ),
        top
    );

    // The seek preview covers the video.
    assert!(check_thumbnails(out, want.duration_s) >= 1);

    // The record says done and lists what was published.
    let m = manifest(out);
    assert_eq!(m["thumbnails"], "thumbnails.vtt");
    assert_eq!(m["status"], "done");
    assert_eq!(m["master_playlist"], "master.m3u8");
    assert!(m["error"].is_null());
    let recorded = m["renditions"].as_array().unwrap();
    assert_eq!(recorded.len(), want.sizes.len());
    for (record, variant) in recorded.iter().zip(&master.variants) {
        assert_eq!(record["playlist"], variant.uri.as_str());
        assert_eq!(record["bandwidth"], variant.bandwidth);
    }
    assert!((m["duration_s"].as_f64().unwrap() - want.duration_s).abs() < 0.5);

    // No work folder or temporary file is left behind.
    for entry in std::fs::read_dir(out).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            !name.starts_with('.') && !name.ends_with(".tmp"),
            "left behind: {name}"
        );
    }
}

/// Transcodes `input` into `out` beside it and insists the job succeeded.
fn transcode_ok(input: &Path, extra: &[&str]) -> (PathBuf, std::process::Output) {
    let out = input.parent().unwrap().join("out");
    let run = transcode_local(input, &out, extra);
    assert!(run.status.success(), "{}", describe(&run));
    (out, run)
}

#[test]
fn landscape_720p_with_audio_at_the_default_preset() {
    let dir = scratch();
    let input = dir.path().join("clip 720p.mp4");
    make_clip(&input, "testsrc2=s=1280x720:r=30", 6.0, true, &[]);
    let (out, run) = transcode_ok(&input, &[]);
    check_outputs(
        &out,
        &Expect {
            sizes: &[(1280, 720), (854, 480), (640, 360), (426, 240)],
            duration_s: 6.0,
            audio: true,
        },
    );
    // At the default preset (veryfast) every rung is High profile.
    let master = std::fs::read_to_string(out.join("master.m3u8")).unwrap();
    let high = master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF:") && l.contains("CODECS=\"avc1.64"));
    assert_eq!(high.count(), 4, "{master}");
    // The opening's 1, 1 and 2 s segments, then 4 s ones (the last cut short by the end),
    // each starting on a keyframe, and no other keyframe: 1 + 1 + 2 + 2.
    for rung in ["720p", "240p"] {
        let playlist = out.join(rung).join("index.m3u8");
        let media = media_playlist(&playlist);
        let durations: Vec<f32> = media.segments.iter().map(|s| s.duration).collect();
        assert_eq!(durations, [1.0, 1.0, 2.0, 2.0], "{rung}");
        assert_eq!(media.target_duration, 2, "{rung}");
        let keyframes: Vec<f64> = keyframe_times(&playlist)
            .iter()
            .map(|t| t.parse().unwrap())
            .collect();
        let from_first: Vec<f64> = keyframes
            .iter()
            .map(|t| ((t - keyframes[0]) * 1000.0).round() / 1000.0)
            .collect();
        assert_eq!(from_first, [0.0, 1.0, 2.0, 4.0], "{rung}");
    }

    // Without a terminal, progress is one line per step, climbing to 100%.
    let stdout = String::from_utf8(run.stdout).unwrap();
    let percents: Vec<f64> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("progress "))
        .map(|l| l.split('%').next().unwrap().trim().parse().unwrap())
        .collect();
    assert!(percents.len() >= 2, "{stdout}");
    assert!(percents.windows(2).all(|w| w[0] < w[1]), "{percents:?}");
    assert_eq!(*percents.last().unwrap(), 100.0);
    assert!(
        stdout.contains("done: ") && stdout.contains("master.m3u8"),
        "{stdout}"
    );
}

#[test]
fn portrait_phone_video_keeps_its_orientation() {
    // Phones store landscape frames with a 90 degree display matrix.
    let dir = scratch();
    let coded = dir.path().join("coded.mp4");
    make_clip(&coded, "testsrc2=s=1280x720:r=30", 3.0, true, &[]);
    let input = dir.path().join("phone.mp4");
    ffmpeg(&[
        "-i",
        coded.to_str().unwrap(),
        "-c",
        "copy",
        "-metadata:s:v:0",
        "rotate=90",
        input.to_str().unwrap(),
    ]);
    let (out, _) = transcode_ok(&input, &["--preset", "ultrafast"]);
    check_outputs(
        &out,
        &Expect {
            sizes: &[(720, 1280), (480, 854), (360, 640), (240, 426)],
            duration_s: 3.0,
            audio: true,
        },
    );
    // The renditions are upright: no rotation left for the player to apply.
    let video = stream(&out.join("720p/index.m3u8"), "video").unwrap();
    assert!(video.get("side_data_list").is_none(), "{video}");
}

#[test]
fn small_video_only_source_never_upscales() {
    // 370 lines, no audio: 360p and 240p only, and no audio track.
    let dir = scratch();
    let input = dir.path().join("small.mkv");
    make_clip(&input, "testsrc2=s=658x370:r=25", 3.0, false, &[]);
    let (out, _) = transcode_ok(&input, &["--preset", "ultrafast"]);
    check_outputs(
        &out,
        &Expect {
            sizes: &[(640, 360), (426, 240)],
            duration_s: 3.0,
            audio: false,
        },
    );
}

#[test]
fn tiny_source_gets_one_rung_at_its_own_size() {
    let dir = scratch();
    let input = dir.path().join("qcif.mp4");
    make_clip(&input, "testsrc2=s=176x144:r=15", 3.0, true, &[]);
    let (out, _) = transcode_ok(&input, &["--preset", "ultrafast"]);
    check_outputs(
        &out,
        &Expect {
            sizes: &[(176, 144)],
            duration_s: 3.0,
            audio: true,
        },
    );
    assert!(out.join("144p/index.m3u8").exists());
}

#[test]
fn ten_bit_422_anamorphic_source_with_cover_art() {
    // ProRes 4:2:2 10-bit, 720x576 with 16:11 pixels (displayed 1047x576), and a PNG cover
    // picture as the first stream: the cover is skipped, pixels are squared, depth is 8-bit.
    let dir = scratch();
    let cover = dir.path().join("cover.png");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=red:s=300x300",
        "-frames:v",
        "1",
        cover.to_str().unwrap(),
    ]);
    let input = dir.path().join("master.mov");
    ffmpeg(&[
        "-i",
        cover.to_str().unwrap(),
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=720x576:r=25",
        "-f",
        "lavfi",
        "-i",
        "sine",
        "-t",
        "3",
        "-map",
        "0:v",
        "-map",
        "1:v",
        "-map",
        "2:a",
        "-c:v:0",
        "png",
        "-disposition:v:0",
        "attached_pic",
        "-c:v:1",
        "prores_ks",
        "-profile:v:1",
        "2",
        "-pix_fmt:v:1",
        "yuv422p10le",
        "-filter:v:1",
        "setsar=16/11",
        "-c:a",
        "pcm_s16le",
        input.to_str().unwrap(),
    ]);
    let source = stream(&input, "video").unwrap();
    assert!(
        source["pix_fmt"].as_str().unwrap().contains("10"),
        "{source}"
    );
    let (out, _) = transcode_ok(&input, &["--preset", "ultrafast"]);
    check_outputs(
        &out,
        &Expect {
            sizes: &[(872, 480), (654, 360), (436, 240)],
            duration_s: 3.0,
            audio: true,
        },
    );
}

#[test]
fn cmaf_serves_hls_and_dash_from_the_same_segments() {
    // A film: two audio tracks (French, the default, and English) and subtitles.
    let dir = scratch();
    let input = make_film(dir.path(), "film.mp4", 6.0);
    let (out, _) = transcode_ok(&input, &["--segments", "cmaf", "--preset", "ultrafast"]);

    // HLS version 7: an audio rendition per track, French first and the default, which every
    // video variant names; then an audio-only variant.
    let text = std::fs::read_to_string(out.join("master.m3u8")).unwrap();
    assert!(text.contains("#EXT-X-VERSION:7"), "{text}");
    let master = master_playlist(&out.join("master.m3u8"));
    let tracks: Vec<(Option<&str>, Option<&str>, bool)> = master
        .alternatives
        .iter()
        .filter(|a| a.media_type == m3u8_rs::AlternativeMediaType::Audio)
        .map(|a| (a.language.as_deref(), a.uri.as_deref(), a.default))
        .collect();
    assert_eq!(
        tracks,
        [
            (Some("fra"), Some("audio/index.m3u8"), true),
            (Some("eng"), Some("audio_2/index.m3u8"), false)
        ],
        "{text}"
    );
    let group = master.alternatives[0].group_id.clone();
    assert!(master
        .alternatives
        .iter()
        .filter(|a| a.media_type == m3u8_rs::AlternativeMediaType::Audio)
        .all(|a| a.group_id == group));
    // Each rung's I-frame playlist: every byte range, behind the init segment, decodes to
    // exactly one frame, a keyframe.
    let (iframe_variants, variants): (Vec<_>, Vec<_>) =
        master.variants.iter().cloned().partition(|v| v.is_i_frame);
    assert_eq!(iframe_variants.len(), 3, "{text}");
    for variant in &iframe_variants {
        assert!(check_iframes(&out.join(&variant.uri)) > 0);
    }
    let master = m3u8_rs::MasterPlaylist { variants, ..master };
    let (video_variants, audio_only) = master.variants.split_at(3);
    assert_eq!(audio_only.len(), 1, "{text}");
    assert_eq!(audio_only[0].uri, "audio/index.m3u8");
    assert_eq!(audio_only[0].codecs.as_deref(), Some("mp4a.40.2"));
    let record = manifest(&out);
    // The record lists what a catalogue needs: the format, the DASH manifest, each audio track.
    assert_eq!(record["segments"], "cmaf");
    assert_eq!(record["dash_manifest"], "manifest.mpd");
    let audio = record["audio"].as_array().unwrap();
    let listed: Vec<(&str, bool)> = audio
        .iter()
        .map(|a| {
            (
                a["playlist"].as_str().unwrap(),
                a["default"].as_bool().unwrap(),
            )
        })
        .collect();
    let tracks = master
        .alternatives
        .iter()
        .filter(|a| a.media_type == m3u8_rs::AlternativeMediaType::Audio);
    let want: Vec<(&str, bool)> = tracks
        .map(|a| (a.uri.as_deref().unwrap(), a.default))
        .collect();
    assert_eq!(listed, want);
    assert!(audio.iter().all(|a| a["bandwidth"].as_u64().unwrap() > 0));
    let mut keyframe_grids = Vec::new();
    for (variant, recorded) in video_variants
        .iter()
        .zip(record["renditions"].as_array().unwrap())
    {
        assert_eq!(variant.audio.as_deref(), Some(group.as_str()));
        assert!(variant.codecs.as_deref().unwrap().ends_with(",mp4a.40.2"));
        assert_eq!(recorded["bandwidth"], variant.bandwidth);
        let iframes = recorded["iframe_playlist"].as_str().unwrap();
        assert!(out.join(iframes).is_file(), "{recorded}");
        // Each rung: fMP4 segments behind its init segment, video only.
        let playlist = out.join(&variant.uri);
        let media = media_playlist(&playlist);
        assert_eq!(media.segments[0].map.as_ref().unwrap().uri, "init.mp4");
        assert!(playlist.parent().unwrap().join("init.mp4").is_file());
        assert!(media.segments.iter().all(|s| s.uri.ends_with(".m4s")));
        let durations: Vec<f32> = media.segments.iter().map(|s| s.duration).collect();
        assert_eq!(durations, [1.0, 1.0, 2.0, 2.0], "{}", variant.uri);
        let video = stream(&playlist, "video").unwrap();
        assert_eq!(video["codec_name"], "h264");
        let size = variant.resolution.unwrap();
        assert_eq!(
            (video["width"].as_u64(), video["height"].as_u64()),
            (Some(size.width), Some(size.height))
        );
        assert!(
            stream(&playlist, "audio").is_none(),
            "the audio is its own rendition"
        );
        keyframe_grids.push(keyframe_times(&playlist));
    }
    assert!(
        keyframe_grids.windows(2).all(|w| w[0] == w[1]),
        "{keyframe_grids:?}"
    );
    // Each track encoded once, to AAC stereo at 48 kHz, whole.
    for folder in ["audio", "audio_2"] {
        let playlist = out.join(folder).join("index.m3u8");
        let sound = stream(&playlist, "audio").unwrap();
        assert_eq!(
            (
                sound["codec_name"].as_str(),
                sound["channels"].as_u64(),
                sound["sample_rate"].as_str()
            ),
            (Some("aac"), Some(2), Some("48000")),
            "{folder}"
        );
        let heard: f32 = media_playlist(&playlist)
            .segments
            .iter()
            .map(|s| s.duration)
            .sum();
        assert!((f64::from(heard) - 6.0).abs() < 0.1, "{folder}: {heard}");
    }

    // DASH over the same files: ffmpeg's own DASH demuxer (an absolute path: it resolves
    // relative ones against the wrong folder) finds every rung and both tracks, and decodes
    // every frame of the top and bottom rungs through the manifest.
    let mpd = std::fs::canonicalize(out.join("manifest.mpd")).unwrap();
    // It refuses the subtitles' .vtt files unless told (a guard for untrusted manifests).
    let probed = ffprobe(&mpd, &["-allowed_extensions", "ALL", "-show_streams"]);
    let streams = probed["streams"].as_array().unwrap();
    let sizes: Vec<(u64, u64)> = streams
        .iter()
        .filter(|s| s["codec_type"] == "video")
        .map(|s| (s["width"].as_u64().unwrap(), s["height"].as_u64().unwrap()))
        .collect();
    assert_eq!(sizes, [(854, 480), (640, 360), (428, 240)]);
    let languages: Vec<&str> = streams
        .iter()
        .filter(|s| s["codec_name"] == "aac")
        .filter_map(|s| s["tags"]["language"].as_str())
        .collect();
    assert_eq!(languages, ["fra", "eng"]);
    for index in ["v:0", "v:2"] {
        assert_eq!(frames_read(&mpd, index), 180, "{index}");
    }
}

#[test]
fn subtitle_tracks_and_sidecars_become_webvtt_and_bad_sidecars_are_left_out() {
    let dir = scratch();
    let input = make_film(dir.path(), "film.mp4", 6.0);
    // Two sidecars that are not subtitles: a playlist dressed as WebVTT, and 3 MB of "SubRip".
    std::fs::write(
        dir.path().join("film.it.vtt"),
        "#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("film.de.srt"), vec![b'1'; 3 << 20]).unwrap();
    let (out, _) = transcode_ok(&input, &["--segments", "cmaf", "--preset", "ultrafast"]);

    // The French track, then the English sidecar, each a whole-file WebVTT playlist.
    let master = master_playlist(&out.join("master.m3u8"));
    let subtitles: Vec<(Option<&str>, Option<&str>)> = master
        .alternatives
        .iter()
        .filter(|a| a.media_type == m3u8_rs::AlternativeMediaType::Subtitles)
        .map(|a| (a.language.as_deref(), a.uri.as_deref()))
        .collect();
    assert_eq!(
        subtitles,
        [
            (Some("fra"), Some("subs/index.m3u8")),
            (Some("en"), Some("subs_2/index.m3u8"))
        ]
    );
    for (folder, first_cue) in [
        ("subs", "Bonjour from the track"),
        ("subs_2", "Hello from the sidecar"),
    ] {
        let media = media_playlist(&out.join(folder).join("index.m3u8"));
        assert_eq!(media.segments.len(), 1);
        assert!((media.segments[0].duration - 6.0).abs() < 0.1);
        let vtt = std::fs::read_to_string(out.join(folder).join("subtitles.vtt")).unwrap();
        assert!(vtt.starts_with("WEBVTT"), "{vtt}");
        assert!(vtt.contains(first_cue), "{folder}: {vtt}");
    }
    assert!(!out.join("subs_3").exists());
    // DASH lists them too.
    let mpd = std::fs::read_to_string(out.join("manifest.mpd")).unwrap();
    assert_eq!(mpd.matches("mimeType=\"text/vtt\"").count(), 2, "{mpd}");

    // The record lists what was published and says what was left out.
    let record = manifest(&out);
    assert_eq!(record["status"], "done");
    assert_eq!(record["subtitles"][0]["playlist"], "subs/index.m3u8");
    assert_eq!(record["subtitles"][1]["language"], "en");
    let notes: Vec<&str> = record["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("more than subtitles ever need")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("holds no cues")),
        "{notes:?}"
    );
}

#[test]
fn hdr10_source_is_tone_mapped_to_bt709() {
    // 10-bit HEVC as HDR10 masters come: PQ curve, BT.2020, mastering display and content
    // light level metadata.
    let dir = scratch();
    let input = dir.path().join("hdr10.mp4");
    make_clip(
        &input,
        "testsrc2=s=1280x720:r=30,format=yuv420p10le",
        3.0,
        true,
        &hdr_hevc_args("smpte2084")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let source = stream(&input, "video").unwrap();
    assert_eq!(source["pix_fmt"], "yuv420p10le");
    assert_eq!(source["color_transfer"], "smpte2084");
    assert_eq!(source["color_primaries"], "bt2020");

    let (out, _) = transcode_ok(&input, &["--preset", "ultrafast"]);
    check_outputs(
        &out,
        &Expect {
            sizes: &[(1280, 720), (854, 480), (640, 360), (426, 240)],
            duration_s: 3.0,
            audio: true,
        },
    );
    for rung in ["720p", "480p", "360p", "240p"] {
        let video = stream(&out.join(rung).join("index.m3u8"), "video").unwrap();
        for tag in ["color_primaries", "color_transfer", "color_space"] {
            assert_eq!(video[tag], "bt709", "{rung} {tag}: {video}");
        }
        assert_eq!(video["color_range"], "tv", "{rung}");
    }
    assert_eq!(manifest(&out)["tone_mapped_from"], "pq");

    // Converted, not relabelled: the same frame's brightness moved. Read as plain 8-bit, the
    // PQ source averages about 126; tone-mapped, about 80 (the highlights come down to SDR white).
    let naive = mean_luma(&input);
    let mapped = mean_luma(&out.join("720p").join("index.m3u8"));
    assert!(
        (naive - mapped).abs() > 20.0,
        "source read as SDR {naive:.1}, tone-mapped {mapped:.1}"
    );
}

/// The first frame's average luma, 8-bit.
fn mean_luma(path: &Path) -> f64 {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    assert!(out.status.success() && !out.stdout.is_empty());
    out.stdout.iter().map(|&b| f64::from(b)).sum::<f64>() / out.stdout.len() as f64
}

#[test]
fn variable_frame_rate_source_becomes_constant_rate() {
    // Frames dropped irregularly, as a phone does in low light: the timestamps jitter.
    let dir = scratch();
    let input = dir.path().join("vfr.mkv");
    make_clip(
        &input,
        "testsrc2=s=640x360:r=30,select='not(eq(mod(n\\,7)\\,3))*not(eq(mod(n\\,11)\\,5))'",
        4.0,
        true,
        &["-fps_mode", "vfr"],
    );
    let gaps: Vec<f64> = frame_times(&input)
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    let (min, max) = gaps
        .iter()
        .fold((f64::MAX, 0.0_f64), |(a, b), &g| (a.min(g), b.max(g)));
    assert!(
        max - min > 0.02,
        "the source really is variable-rate: {min}..{max}"
    );

    let (out, _) = transcode_ok(&input, &["--preset", "ultrafast"]);
    check_outputs(
        &out,
        &Expect {
            sizes: &[(640, 360), (426, 240)],
            duration_s: 4.0,
            audio: true,
        },
    );
    let times = frame_times(&out.join("360p/index.m3u8"));
    let step = times[1] - times[0];
    assert!(
        times
            .windows(2)
            .all(|w| ((w[1] - w[0]) - step).abs() < 0.002),
        "output frames are evenly spaced"
    );
}

#[test]
fn a_second_run_replaces_the_first() {
    let dir = scratch();
    let input = dir.path().join("a.mp4");
    make_clip(&input, "testsrc2=s=480x270:r=25", 2.0, true, &[]);
    let out = dir.path().join("out");
    for _ in 0..2 {
        let run = transcode_local(&input, &out, &["--preset", "ultrafast"]);
        assert!(run.status.success(), "{}", describe(&run));
    }
    check_outputs(
        &out,
        &Expect {
            sizes: &[(426, 240)],
            duration_s: 2.0,
            audio: true,
        },
    );
}

#[test]
fn a_terminal_gets_a_progress_bar_instead_of_lines() {
    // `script` (util-linux, on every Debian) gives the binary a real pseudo-terminal.
    let dir = scratch();
    let input = dir.path().join("bar.mp4");
    make_clip(&input, "testsrc2=s=640x360:r=25", 6.0, true, &[]);
    let out = dir.path().join("out");
    let command = format!(
        "'{}' local --preset ultrafast '{}' '{}'",
        env!("CARGO_BIN_EXE_transcoder"),
        input.display(),
        out.display()
    );
    let run = std::process::Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", describe(&run));
    let screen = String::from_utf8_lossy(&run.stdout);
    assert!(
        screen.contains("encode ["),
        "a bar labelled with the stage: {screen:?}"
    );
    assert!(
        screen.contains(&format!("[{}] 100%", "=".repeat(40))),
        "the bar fills to 100%: {screen:?}"
    );
    assert!(
        !screen.contains("progress "),
        "no log lines on a terminal: {screen:?}"
    );
    assert!(screen.contains("done: "), "{screen:?}");
    assert!(out.join("master.m3u8").exists());
}
