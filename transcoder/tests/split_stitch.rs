//! Split and stitch with real processes: a coordinator `transcoder serve` with a peer, against
//! moto. The joined output must be the single pass (`transcoder local` on the same file):
//! the same segments, packet timestamps, keyframes and audio packets, playable through; a range
//! whose worker dies is redone elsewhere; a source that fails mid-way publishes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::cloud::*;
use common::*;

const RAW: &str = "raw";
const OUT: &str = "out";
const SECONDS: f64 = 40.0;

async fn setup() -> (Moto, aws_sdk_s3::Client, Vec<(&'static str, String)>) {
    let (moto, s3, mut env) = moto_with_buckets().await;
    env.push(("OUTPUT_PREFIX", "hls/".into()));
    env.push(("TRANSCODER_PRESET", "veryfast".into()));
    (moto, s3, env)
}

/// A coordinator splitting anything over 20 s across `peers`.
fn coordinator(env: &[(&str, String)], peers: &[&str]) -> Server {
    let mut env = env.to_vec();
    env.push(("TRANSCODER_PEERS", peers.join(",")));
    env.push(("SPLIT_MIN_SECONDS", "20".into()));
    Server::start(&env, &[])
}

fn clip(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    make_clip(&path, "testsrc2=s=640x360:r=30", SECONDS, true, &[]);
    path
}

/// Downloads every object under `prefix` into `dir`, keeping the layout.
async fn download_prefix(s3: &aws_sdk_s3::Client, prefix: &str, dir: &Path) {
    testkit::cloud::download_prefix(s3, OUT, prefix, dir).await
}

/// Every packet of one stream of a rendition, read through its playlist: pts, dts, keyframe.
fn packets(playlist: &Path, stream: &str) -> Vec<(i64, i64, bool)> {
    let v = ffprobe(
        playlist,
        &[
            "-select_streams",
            stream,
            "-show_entries",
            "packet=pts,dts,flags",
        ],
    );
    v["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["pts"].as_i64().unwrap(),
                p["dts"].as_i64().unwrap(),
                p["flags"].as_str().unwrap().starts_with('K'),
            )
        })
        .collect()
}

/// What a player reports reading `playlist` to the end: its warnings and decoded frames.
fn play_through(playlist: &Path) -> (String, usize) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "warning", "-i"])
        .arg(playlist)
        .args(["-map", "0:v:0", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count();
    (String::from_utf8_lossy(&out.stderr).into_owned(), frames)
}

fn extinfs(playlist: &Path) -> Vec<String> {
    media_playlist(playlist)
        .segments
        .iter()
        .map(|s| format!("{}={:.3}", s.uri, s.duration))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_split_job_is_the_single_pass_joined_from_ranges_on_two_transcoders() {
    let dir = scratch();
    let source = clip(dir.path(), "long.mp4");
    split_as_single_pass(&source, 30.0, Download::Slow, Segments::Ts).await;
}

/// How the coordinator's download goes.
#[derive(PartialEq)]
enum Download {
    Fast,
    /// Trickled over about 10 s: the first range must go public before it ends.
    Slow,
}

#[tokio::test(flavor = "multi_thread")]
async fn ntsc_frame_rates_and_44_1_khz_audio_join_as_exactly() {
    // 29.97 fps puts the cuts between frames; 44.1 kHz audio is resampled to 48 kHz at each
    // range's start.
    let dir = scratch();
    let source = dir.path().join("ntsc.mp4");
    make_clip(
        &source,
        "testsrc2=s=640x360:r=30000/1001",
        SECONDS,
        true,
        &["-ar", "44100"],
    );
    split_as_single_pass(&source, 30000.0 / 1001.0, Download::Fast, Segments::Cmaf).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_hlg_source_is_tone_mapped_in_its_ranges_as_in_the_single_pass() {
    // 10-bit HEVC with the HLG curve, as phones record HDR: each range tone-maps its own
    // frames, and the joined rungs must still be the single pass's, packet for packet.
    let dir = scratch();
    let source = dir.path().join("hlg.mp4");
    make_clip(
        &source,
        "testsrc2=s=640x360:r=30,format=yuv420p10le",
        SECONDS,
        true,
        &hdr_hevc_args("arib-std-b67")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        stream(&source, "video").unwrap()["color_transfer"],
        "arib-std-b67"
    );
    split_as_single_pass(&source, 30.0, Download::Fast, Segments::Cmaf).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cmaf_split_job_is_the_single_pass_joined_with_every_audio_track_and_subtitles() {
    // Two audio languages (one at 44.1 kHz), a mov_text track and an SRT sidecar.
    let dir = scratch();
    let source = make_film(dir.path(), "long.mp4", SECONDS);
    split_as_single_pass(&source, 30.0, Download::Slow, Segments::Cmaf).await;
}

/// What the split job writes.
#[derive(PartialEq, Clone, Copy)]
enum Segments {
    Ts,
    Cmaf,
}

/// Splits `source` across a coordinator and a peer and compares the result with the single
/// pass of `transcoder local`, packet by packet.
async fn split_as_single_pass(source: &Path, fps: f64, download: Download, segments: Segments) {
    let (moto, s3, mut env) = setup().await;
    upload(&s3, RAW, "long.mp4", source).await;
    // A film's sidecar goes up beside it, as a catalogue uploads one.
    let sidecar = source.with_file_name("long.en.srt");
    if sidecar.is_file() {
        upload(&s3, RAW, "long.en.srt", &sidecar).await;
    }
    if segments == Segments::Ts {
        env.push(("TRANSCODER_SEGMENTS", "ts".into()));
    }
    // The peer's reads go through a proxy that tells whether it ever read the whole source.
    let peer_reads = testkit::slow_download::SlowDownload::start(
        &moto.endpoint,
        &format!("GET /{RAW}/long.mp4"),
        usize::MAX / 2,
    );
    let mut peer_env = env.clone();
    peer_env.push(("AWS_ENDPOINT_URL", peer_reads.endpoint.clone()));
    let peer = Server::start(&peer_env, &[]);
    let size = std::fs::metadata(source).unwrap().len() as usize;
    let slow = testkit::slow_download::SlowDownload::start(
        &moto.endpoint,
        &format!("GET /{RAW}/long.mp4"),
        if download == Download::Slow {
            size / 10
        } else {
            usize::MAX / 2
        },
    );
    let mut coordinator_env = env.clone();
    coordinator_env.push(("AWS_ENDPOINT_URL", slow.endpoint.clone()));
    let coordinator = coordinator(&coordinator_env, &[&peer.endpoint]);

    let submit = {
        let env = env.clone();
        let endpoint = coordinator.endpoint.clone();
        std::thread::spawn(move || {
            transcoder(
                &env,
                &["submit", "--endpoint", &endpoint, "s3://raw/long.mp4"],
            )
        })
    };
    // Both transcoders encode at once.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut peer_worked, mut both_at_once) = (false, false);
    // When the stable master first exists, and when the coordinator's download ended.
    let (mut playable_at, mut downloaded_at) = (None, None);
    while !submit.is_finished() && Instant::now() < deadline {
        let (here, there) = (
            !coordinator.ffmpeg_children().is_empty(),
            !peer.ffmpeg_children().is_empty(),
        );
        peer_worked |= there;
        both_at_once |= here && there;
        if downloaded_at.is_none() && slow.finished() {
            downloaded_at = Some(Instant::now());
        }
        let master = s3.head_object().bucket(OUT).key("hls/long/master.m3u8");
        if playable_at.is_none() && master.send().await.is_ok() {
            playable_at = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let run = submit.join().unwrap();
    assert!(run.status.success(), "{}", describe(&run));
    if download == Download::Slow {
        assert!(
            playable_at.is_some_and(|at| at < downloaded_at.unwrap_or(Instant::now())),
            "the first range streams while the source downloads: {playable_at:?} {downloaded_at:?}"
        );
    }
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        peer_worked && both_at_once,
        "the peer took a range alongside"
    );
    assert!(
        !peer_reads.finished(),
        "the peer read its range's bytes of the MP4, never the whole source"
    );
    let playable = stdout.find("playable s3://out/hls/long/master.m3u8");
    let done = stdout.find("done: ");
    assert!(playable.is_some() && playable < done, "{stdout}");
    // The first range is published as it grows: playable before any range has landed (the
    // job's progress moves as ranges land).
    let first_landed = stdout.lines().position(|line| {
        line.strip_prefix("progress ")
            .and_then(|rest| rest.split('%').next())
            .and_then(|percent| percent.trim().parse::<f64>().ok())
            .is_some_and(|percent| percent > 0.0)
    });
    let playable_line = stdout.lines().position(|l| l.starts_with("playable "));
    assert!(
        first_landed.is_some() && playable_line < first_landed,
        "playable before the first range landed: {stdout}"
    );

    match segments {
        Segments::Ts => joined_equals_single_pass(&s3, source, fps).await,
        Segments::Cmaf => joined_cmaf_equals_single_pass(&s3, source, fps).await,
    }
}

/// A CMAF split job's output against the single pass: the same variants, audio and subtitle
/// renditions and I-frame playlists, every video and audio packet at the same time, and a
/// DASH manifest that reads through.
async fn joined_cmaf_equals_single_pass(s3: &aws_sdk_s3::Client, source: &Path, fps: f64) {
    let dir = scratch();
    let joined = dir.path().join("joined");
    download_prefix(s3, "hls/long/", &joined).await;
    let record = manifest(&joined);
    assert_eq!(record["status"], "done", "{record}");
    assert!(record["playable_at"].is_string());
    assert!(check_thumbnails(&joined, SECONDS) >= 20);

    let single = dir.path().join("single");
    let args = ["--preset", "veryfast", "--segments", "cmaf"];
    let local = transcode_local(source, &single, &args);
    assert!(local.status.success(), "{}", describe(&local));
    let single_record = manifest(&single);
    let languages = |r: &serde_json::Value| -> Vec<String> {
        let subtitles = r["subtitles"].as_array().cloned().unwrap_or_default();
        subtitles
            .iter()
            .map(|s| s["language"].to_string())
            .collect()
    };
    assert_eq!(languages(&record), languages(&single_record), "{record}");
    let film = source.with_file_name("long.en.srt").is_file();
    if film {
        assert_eq!(languages(&record), ["\"fra\"", "\"en\""], "{record}");
    }

    let version = record["version"].as_str().unwrap().to_string();
    let unversioned = |uri: &str| {
        uri.strip_prefix(&format!("{version}/"))
            .unwrap_or(uri)
            .to_string()
    };
    let single_master = master_playlist(&single.join("master.m3u8"));
    let joined_master = master_playlist(&joined.join("master.m3u8"));
    let playing = |m: &m3u8_rs::MasterPlaylist| -> Vec<m3u8_rs::VariantStream> {
        m.variants
            .iter()
            .filter(|v| !v.is_i_frame)
            .cloned()
            .collect()
    };
    let (joined_variants, single_variants) = (playing(&joined_master), playing(&single_master));
    assert_eq!(joined_variants.len(), single_variants.len());
    assert_eq!(joined_master.variants.len(), single_master.variants.len());
    for (j, s) in joined_master.variants.iter().zip(&single_master.variants) {
        let describe = |v: &m3u8_rs::VariantStream, uri: String| {
            (
                uri,
                v.resolution,
                v.codecs.clone(),
                v.audio.clone(),
                v.subtitles.clone(),
            )
        };
        assert_eq!(describe(j, unversioned(&j.uri)), describe(s, s.uri.clone()));
        assert_eq!(j.is_i_frame, s.is_i_frame);
        if j.is_i_frame {
            // One keyframe per segment, from every range.
            let ranges = check_iframes(&joined.join(&j.uri));
            assert_eq!(ranges, media_playlist(&single.join(&s.uri)).segments.len());
        }
    }
    let renditions = |m: &m3u8_rs::MasterPlaylist, strip: &dyn Fn(&str) -> String| {
        m.alternatives
            .iter()
            .map(|a| {
                let uri = strip(a.uri.as_deref().unwrap_or_default());
                (a.media_type.to_string(), uri, a.language.clone(), a.default)
            })
            .collect::<Vec<_>>()
    };
    let same = |uri: &str| uri.to_string();
    let audio_and_text = renditions(&joined_master, &unversioned);
    assert_eq!(audio_and_text, renditions(&single_master, &same));
    let expected = if film { 4 } else { 1 };
    assert_eq!(
        audio_and_text.len(),
        expected,
        "the film: two audio tracks, two subtitles"
    );

    // Video: every rung's packets and segments as the single pass's, playable through.
    for (j, s) in joined_variants.iter().zip(&single_variants) {
        let (single_pl, joined_pl) = (single.join(&s.uri), joined.join(&j.uri));
        if s.resolution.is_none() {
            continue; // The audio-only variant: compared below.
        }
        assert!(media_playlist(&joined_pl).end_list);
        assert_eq!(extinfs(&joined_pl), extinfs(&single_pl), "{}", j.uri);
        let (jp, sp) = (packets(&joined_pl, "v:0"), packets(&single_pl, "v:0"));
        let first = jp.iter().zip(&sp).position(|(a, b)| a != b);
        assert!(
            jp == sp,
            "{}: {} vs {} packets, first differing {first:?}: {:?} vs {:?}",
            j.uri,
            jp.len(),
            sp.len(),
            first.map(|i| &jp[i.saturating_sub(2)..(i + 3).min(jp.len())]),
            first.map(|i| &sp[i.saturating_sub(2)..(i + 3).min(sp.len())]),
        );
        let (warnings, frames) = play_through(&joined_pl);
        assert!(warnings.trim().is_empty(), "{}: {warnings}", j.uri);
        assert!((frames as f64 - SECONDS * fps).abs() <= 1.0, "{frames}");
    }
    // Audio: each track's packets, at the same times, across every cut.
    for audio in joined_master
        .alternatives
        .iter()
        .filter(|a| a.media_type == m3u8_rs::AlternativeMediaType::Audio)
    {
        let uri = audio.uri.as_deref().unwrap();
        let joined_packets = packets(&joined.join(uri), "a:0");
        let single_packets = packets(&single.join(unversioned(uri)), "a:0");
        assert!(joined_packets.len() as f64 > SECONDS * 46.0, "{uri}");
        assert_eq!(joined_packets, single_packets, "{uri}");
    }
    // The DASH manifest over the same files reads through, every frame.
    let mpd = std::fs::canonicalize(joined.join("manifest.mpd")).unwrap();
    let frames = frames_read(&mpd, "v:0") as f64;
    assert!((frames - SECONDS * fps).abs() <= 1.0, "{frames}");
}

/// A split job's ranges on ECS tasks: moto with a Fargate cluster, a harness standing in for
/// the ECS agent that runs `runners` tasks at a time (each with `task_env` over the tests'),
/// and a coordinator with no peer and `slots` range-task slots; `source` uploaded as `key`.
struct TaskSplit {
    moto: Moto,
    s3: aws_sdk_s3::Client,
    ecs: aws_sdk_ecs::Client,
    env: Vec<(&'static str, String)>,
    /// The coordinator's: the tests' with the ECS placement and SPLIT_TASKS.
    coordinator_env: Vec<(&'static str, String)>,
    agent: testkit::ecs::EcsAgentHarness,
    coordinator: Server,
}

impl TaskSplit {
    async fn start(
        source: &Path,
        key: &str,
        slots: u32,
        runners: usize,
        task_env: &[(&str, &str)],
    ) -> Self {
        let (moto, s3, env) = setup().await;
        upload(&s3, RAW, key, source).await;
        let ecs = aws_sdk_ecs::Client::new(&moto.config().await);
        let placement = testkit::ecs::fargate_cluster(&ecs, &moto.endpoint).await;
        let mut tasks: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        tasks.extend(task_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let agent = testkit::ecs::EcsAgentHarness::start(
            moto.config().await,
            testkit::ecs::CLUSTER,
            runners,
            tasks,
        );
        let mut coordinator_env = env.clone();
        coordinator_env.extend(placement);
        coordinator_env.push(("SPLIT_TASKS", slots.to_string()));
        let coordinator = coordinator(&coordinator_env, &[]);
        Self {
            moto,
            s3,
            ecs,
            env,
            coordinator_env,
            agent,
            coordinator,
        }
    }

    /// `transcoder submit` of the upload `key`.
    fn submit(&self, key: &str) -> std::process::Output {
        transcoder(
            &self.env,
            &[
                "submit",
                "--endpoint",
                &self.coordinator.endpoint,
                &format!("s3://{RAW}/{key}"),
            ],
        )
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_split_job_runs_ranges_on_ecs_tasks_it_starts() {
    // No peer: the coordinator starts a Fargate task per range (RunTask), and the harness that
    // stands in for ECS runs each task's `transcoder run-range` as a process.
    let dir = scratch();
    let source = clip(dir.path(), "long.mp4");
    let split = TaskSplit::start(&source, "long.mp4", 2, 2, &[]).await;
    let run = split.submit("long.mp4");
    assert!(run.status.success(), "{}", describe(&run));

    let runs = split.agent.runs();
    let logs: Vec<&str> = runs.iter().map(|r| r.stderr.as_str()).collect();
    assert!(
        runs.len() >= 2,
        "a task per range beside the coordinator's: {logs:?}"
    );
    for task in &runs {
        assert_eq!(task.started_by, "vod-split");
        assert_eq!(task.command, ["run-range"]);
        assert_eq!(task.exit_code, Some(0), "{}", task.stderr);
        // The overrides carry the range and where its result goes, nothing else.
        assert_eq!(
            task.overrides.keys().collect::<Vec<_>>(),
            ["RANGE_JOB", "RANGE_RESULT"]
        );
        assert!(task.overrides["RANGE_RESULT"].starts_with("s3://out/hls/long/"));
    }
    assert_eq!(
        split.agent.most_at_once(),
        2,
        "both task slots worked at once"
    );
    // The coordinator read every result and removed it.
    let left = split
        .s3
        .list_objects_v2()
        .bucket(OUT)
        .prefix("hls/long/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = left.contents().iter().filter_map(|o| o.key()).collect();
    assert!(!keys.iter().any(|k| k.contains("/ranges/")), "{keys:?}");
    joined_cmaf_equals_single_pass(&split.s3, &source, 30.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_split_job_moves_while_its_ranges_outlast_the_stall_limit() {
    // A job that owns its message holds it only while it moves, and a split job's progress
    // moves only when a range lands: ranges that take longer than TRANSCODER_STALL_SECONDS
    // must count as movement while they encode, here or on a task. (Before they did, a long
    // source split over few workers was stopped as stalled, again and again.)
    // 720p, so that each range's encode takes several seconds.
    let dir = scratch();
    let source = dir.path().join("long.mp4");
    make_clip(&source, "testsrc2=s=1280x720:r=30", 60.0, true, &[]);
    let split = TaskSplit::start(&source, "long.mp4", 1, 1, &[]).await;
    let sqs = split.moto.sqs().await;
    let queue = sqs
        .create_queue()
        .queue_name("uploads")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    sqs.send_message()
        .queue_url(&queue)
        .message_body("{}")
        .send()
        .await
        .unwrap();
    let received = sqs
        .receive_message()
        .queue_url(&queue)
        .send()
        .await
        .unwrap();
    let handle = received.messages()[0].receipt_handle().unwrap().to_string();
    let mut env = split.coordinator_env.clone();
    env.push(("TRANSCODER_STALL_SECONDS", "3".into()));
    env.push(("TRANSCODER_VISIBILITY_EXTENSION_SECONDS", "3".into()));
    env.push(("SPLIT_MIN_SECONDS", "20".into()));
    env.push(("SPLIT_FIRST_RANGE_SECONDS", "4".into()));
    let run = transcoder(
        &env,
        &[
            "run",
            "--source",
            "s3://raw/long.mp4",
            "--output",
            "s3://out/hls/long/",
            "--queue-url",
            &queue,
            "--receipt-handle",
            &handle,
        ],
    );
    assert!(run.status.success(), "{}", describe(&run));
    assert!(split.agent.runs().iter().any(|r| r.exit_code == Some(0)));
    let record = get(&split.s3, OUT, "hls/long/manifest.json").await;
    let record: serde_json::Value = serde_json::from_slice(&record).unwrap();
    assert_eq!(record["status"], "done", "{record}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_range_task_that_dies_without_a_result_is_redone() {
    // A task that ends without leaving a result (killed, out of memory) stops; DescribeTasks
    // says so, and the range goes to another worker. Here every task's S3 is out of reach: it
    // can neither read its range nor leave a result.
    let dir = scratch();
    let source = clip(dir.path(), "long.mp4");
    let unreachable = [("AWS_ENDPOINT_URL", "http://127.0.0.1:9")];
    let split = TaskSplit::start(&source, "long.mp4", 1, 1, &unreachable).await;
    let run = split.submit("long.mp4");
    assert!(run.status.success(), "{}", describe(&run));
    let runs = split.agent.runs();
    assert!(!runs.is_empty());
    assert!(runs.iter().all(|r| r.exit_code != Some(0)), "{runs:#?}");
    joined_cmaf_equals_single_pass(&split.s3, &source, 30.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_split_job_stops_the_range_task_it_no_longer_waits_for() {
    // The index says 40 s, the data ends near 24 s: the last range fails the job as invalid
    // input while the middle range's task has not run (no capacity: the harness runs none).
    let dir = scratch();
    let path = dir.path().join("cut.mp4");
    cut_clip(&path, "testsrc2=s=640x360:r=30", SECONDS);
    let split = TaskSplit::start(&path, "cut.mp4", 1, 0, &[]).await;
    let run = split.submit("cut.mp4");
    assert_eq!(run.status.code(), Some(2), "{}", describe(&run));
    only_a_failed_record(&split.s3, "hls/cut/").await;
    assert!(split.agent.runs().is_empty());
    // The task was started, and is stopped by the coordinator, saying why.
    let ecs = &split.ecs;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let arns = ecs
            .list_tasks()
            .cluster(testkit::ecs::CLUSTER)
            .desired_status(aws_sdk_ecs::types::DesiredStatus::Stopped)
            .send()
            .await
            .unwrap()
            .task_arns
            .unwrap_or_default();
        if !arns.is_empty() {
            let described = ecs
                .describe_tasks()
                .cluster(testkit::ecs::CLUSTER)
                .set_tasks(Some(arns))
                .send()
                .await
                .unwrap();
            let task = &described.tasks()[0];
            assert_eq!(task.started_by(), Some("vod-split"));
            assert_eq!(
                task.stopped_reason(),
                Some("its split job no longer waits for it")
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the range task was never stopped"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Downloads the split job's published output and compares it with the single pass of
/// `transcoder local` on `source`, packet by packet.
async fn joined_equals_single_pass(s3: &aws_sdk_s3::Client, source: &Path, fps: f64) {
    let dir = scratch();
    let joined = dir.path().join("joined");
    download_prefix(s3, "hls/long/", &joined).await;
    let record = manifest(&joined);
    assert_eq!(record["status"], "done");
    assert!(record["playable_at"].is_string());
    // The seek preview, from the source's keyframes, covers the whole video.
    assert_eq!(record["thumbnails"], "thumbnails.vtt");
    assert!(check_thumbnails(&joined, SECONDS) >= 20);

    // The single pass of the same file, for comparison.
    let single = dir.path().join("single");
    let args = ["--preset", "veryfast", "--segments", "ts"];
    let local = transcode_local(source, &single, &args);
    assert!(local.status.success(), "{}", describe(&local));

    let single_master = master_playlist(&single.join("master.m3u8"));
    let joined_master = master_playlist(&joined.join("master.m3u8"));
    assert_eq!(joined_master.variants.len(), single_master.variants.len());
    let version = record["version"].as_str().unwrap();
    for (j, s) in joined_master.variants.iter().zip(&single_master.variants) {
        // The stable master names the version's rungs; `local` writes one version flat.
        assert_eq!(
            (
                j.uri.strip_prefix(&format!("{version}/")),
                &j.resolution,
                &j.codecs
            ),
            (Some(s.uri.as_str()), &s.resolution, &s.codecs)
        );
        let (single_pl, joined_pl) = (single.join(&s.uri), joined.join(&j.uri));
        let joined_media = media_playlist(&joined_pl);
        assert!(joined_media.end_list);
        assert!(!std::fs::read_to_string(&joined_pl)
            .unwrap()
            .contains("DISCONTINUITY"));
        assert_eq!(extinfs(&joined_pl), extinfs(&single_pl), "{}", j.uri);
        // Video: every packet at the same pts and dts, keyframes at the same ones.
        assert_eq!(
            packets(&joined_pl, "v:0"),
            packets(&single_pl, "v:0"),
            "{}",
            j.uri
        );
        // Audio: the same packets, every 1,024 samples across every cut, so in sync with the
        // video exactly as the single pass is.
        let (joined_audio, single_audio) = (packets(&joined_pl, "a:0"), packets(&single_pl, "a:0"));
        assert_eq!(joined_audio.len(), single_audio.len(), "{}", j.uri);
        assert_eq!(
            joined_audio.iter().map(|p| p.0).collect::<Vec<_>>(),
            single_audio.iter().map(|p| p.0).collect::<Vec<_>>()
        );
        assert!(joined_audio.windows(2).all(|w| w[1].0 - w[0].0 == 1920));
        // And each segment holds the same audio packets as the single pass's: its first one
        // is the same, cut by cut.
        let folder = s.uri.rsplit_once('/').unwrap().0;
        for segment in media_playlist(&joined_pl).segments {
            let first_audio = |root: &Path| {
                let path = root.join(folder).join(&segment.uri);
                let v = ffprobe(
                    &path,
                    &["-select_streams", "a:0", "-show_entries", "packet=pts"],
                );
                v["packets"][0]["pts"].as_i64()
            };
            assert_eq!(
                first_audio(&joined.join(version)),
                first_audio(&single),
                "{folder}/{}",
                segment.uri
            );
        }
        // A player reads it through without a complaint, every frame.
        let (warnings, frames) = play_through(&joined_pl);
        assert!(warnings.trim().is_empty(), "{}: {warnings}", j.uri);
        assert_eq!(
            frames,
            play_through(&single_pl).1,
            "as many frames as the single pass"
        );
        assert!((frames as f64 - SECONDS * fps).abs() <= 1.0, "{frames}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_range_whose_worker_dies_is_redone_elsewhere() {
    let (_moto, s3, env) = setup().await;
    let dir = scratch();
    upload(&s3, RAW, "long.mp4", &clip(dir.path(), "long.mp4")).await;
    let mut peer = Server::start(&env, &[]);
    // A second peer that is not there at all: its ranges fail at once and go elsewhere.
    let gone = format!("http://127.0.0.1:{}", free_port());
    let coordinator = coordinator(&env, &[&peer.endpoint, &gone]);

    let submit = {
        let (env, endpoint) = (env.clone(), coordinator.endpoint.clone());
        std::thread::spawn(move || {
            transcoder(
                &env,
                &["submit", "--endpoint", &endpoint, "s3://raw/long.mp4"],
            )
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while peer.ffmpeg_children().is_empty() {
        assert!(Instant::now() < deadline, "the peer never took a range");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The peer dies mid-range.
    peer.child.kill().unwrap();
    let run = submit.join().unwrap();
    assert!(run.status.success(), "{}", describe(&run));

    let joined = dir.path().join("joined");
    download_prefix(&s3, "hls/long/", &joined).await;
    let record = manifest(&joined);
    assert_eq!(record["status"], "done");
    let joined = joined.join(record["version"].as_str().unwrap());
    for rung in ["360p", "240p"] {
        let playlist = joined.join(rung).join("index.m3u8");
        let listed: f64 = media_playlist(&playlist)
            .segments
            .iter()
            .map(|s| f64::from(s.duration))
            .sum();
        assert!((listed - SECONDS).abs() < 0.01, "{rung}: {listed}");
        let (warnings, frames) = play_through(&playlist);
        assert!(warnings.trim().is_empty(), "{warnings}");
        assert_eq!(frames, (SECONDS * 30.0) as usize);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_failing_in_a_later_range_publishes_nothing() {
    let (_moto, s3, env) = setup().await;
    // Cut at 60%: the index says 40 s, the data ends near 24 s, so the first ranges succeed
    // (and go public) and the last comes out short.
    let dir = scratch();
    let path = dir.path().join("cut.mp4");
    cut_clip(&path, "testsrc2=s=640x360:r=30", SECONDS);
    upload(&s3, RAW, "cut.mp4", &path).await;
    let peer = Server::start(&env, &[]);
    let coordinator = coordinator(&env, &[&peer.endpoint]);

    let run = transcoder(
        &env,
        &[
            "submit",
            "--endpoint",
            &coordinator.endpoint,
            "s3://raw/cut.mp4",
        ],
    );
    assert_eq!(run.status.code(), Some(2), "{}", describe(&run));
    only_a_failed_record(&s3, "hls/cut/").await;
}
