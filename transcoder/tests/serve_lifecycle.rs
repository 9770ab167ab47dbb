//! A warm transcoder's life around its jobs: health and reflection for load balancers and
//! grpcurl, and a SIGTERM drain that hands an unfinished job's message back.

mod common;

use std::time::{Duration, Instant};

use common::cloud::*;
use common::*;
use proto::v1::transcode_event::Event;
use proto::v1::transcoder_client::TranscoderClient;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

#[tokio::test(flavor = "multi_thread")]
async fn health_and_reflection_answer_without_a_token() {
    let (_moto, _s3, env) = moto_with_buckets().await;
    let server = Server::start(&env, &["--auth-token", "t0ken"]);

    // The generated health and reflection clients come without `connect`: hand them a channel.
    let channel = tonic::transport::Endpoint::from_shared(server.endpoint.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "transcoder.v1.Transcoder"] {
        let reply = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.status, ServingStatus::Serving as i32, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("not a service list: {reply:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"transcoder.v1.Transcoder".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_then_hands_the_unfinished_job_s_message_back() {
    let (moto, s3, env) = moto_with_buckets().await;
    let sqs = moto.sqs().await;
    let queue_url = create_queue(&sqs, "jobs").await;
    let message = received_message(&sqs, &queue_url, 300).await;

    let dir = scratch();
    let clip = dir.path().join("long.mp4");
    make_clip(&clip, "testsrc2=s=1280x720:r=30", 60.0, true, &[]);
    upload(&s3, "raw", "long.mp4", &clip).await;
    let server = Server::start(&env, &["--drain-seconds", "2", "--preset", "medium"]);

    let mut client = TranscoderClient::connect(server.endpoint.clone())
        .await
        .unwrap();
    let request = proto::v1::TranscodeRequest {
        source: Some(proto::v1::S3Object {
            bucket: "raw".into(),
            key: "long.mp4".into(),
        }),
        message: Some(proto::v1::QueueMessage {
            queue_url: queue_url.clone(),
            receipt_handle: message.receipt_handle().unwrap().into(),
            message_id: message.message_id().unwrap().into(),
            receive_count: 1,
        }),
        ..Default::default()
    };
    let mut stream = client.transcode(request).await.unwrap().into_inner();
    // Wait until it encodes, then ask the server to stop, as ECS does.
    loop {
        let event = stream
            .message()
            .await
            .unwrap()
            .expect("the stream runs")
            .event;
        if let Some(Event::Stage(s)) = event {
            if s.stage == proto::v1::Stage::Encode as i32 {
                break;
            }
        }
    }
    let sigterm = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sigterm.success());

    // The job cannot finish in the 2 s drain: it is stopped and says so.
    let last = loop {
        match stream.message().await {
            Ok(Some(proto::v1::TranscodeEvent {
                event: Some(Event::Failed(f)),
            })) => break f,
            Ok(Some(_)) => continue,
            other => panic!("the stream ended without a failure: {other:?}"),
        }
    };
    assert_eq!(last.kind, proto::v1::ErrorKind::Internal as i32, "{last:?}");

    // The server exits by itself, and the message is back on the queue at once (its 300 s
    // visibility was cut to 0), for another transcoder to take.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut server = server;
    loop {
        if server.child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not exit after draining"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        visible_messages(&sqs, &queue_url).await,
        1,
        "the message was handed back"
    );
    assert!(!list_keys(&s3, "out", "long/")
        .await
        .contains(&"long/master.m3u8".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_request_is_refused_before_anything_runs() {
    let (_moto, s3, env) = moto_with_buckets().await;
    let server = Server::start(&env, &[]);
    let mut client = TranscoderClient::connect(server.endpoint.clone())
        .await
        .unwrap();
    // A real request is a few hundred bytes; 100 KiB of key is an attack or a bug.
    let request = proto::v1::TranscodeRequest {
        source: Some(proto::v1::S3Object {
            bucket: "raw".into(),
            key: "k".repeat(100 * 1024),
        }),
        ..Default::default()
    };
    let status = client.transcode(request).await.unwrap_err();
    // tonic's answer to a message over the decoding limit.
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains("the limit is: 65536 bytes"),
        "{status:?}"
    );
    assert!(server.ffmpeg_children().is_empty());
    assert!(
        list_keys(&s3, "out", "").await.is_empty(),
        "nothing written"
    );
    // The server is unharmed.
    let mut health = HealthClient::new(
        tonic::transport::Endpoint::from_shared(server.endpoint.clone())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let reply = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(reply.into_inner().status, ServingStatus::Serving as i32);
}

#[test]
fn a_server_that_cannot_start_its_tools_never_serves() {
    // Every job starts ffprobe and ffmpeg: a server that cannot must not answer SERVING.
    let out = testkit::cloud::transcoder(
        &[],
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ffprobe",
            "/nonexistent/ffprobe",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot run /nonexistent/ffprobe"),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "it listened"
    );
}
