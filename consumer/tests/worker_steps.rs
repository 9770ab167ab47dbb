//! The consumer's loop driven one step at a time: an in-memory queue with SQS's visibility
//! and redrive rules, a dispatcher that answers as scripted, and tokio's paused time, so that
//! fifteen minutes of waiting take none. Each test asserts what became of the messages
//! (deleted, visible, held, their receive counts, the dead-letter list) and what the
//! dispatcher was given, never log wording. The same loop against moto and real transcoders
//! is in grpc_pipeline.rs, grpc_handback.rs and ecs_dispatch.rs.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consumer::dispatch::{DispatchError, Dispatcher, Handover, Job};
use consumer::event::{single_upload_notification, Filters, Upload};
use consumer::in_flight::InFlight;
use consumer::queue::MemoryQueue;
use consumer::worker::{Outcome, Worker, PARK_LIMIT};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const VISIBILITY: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(20);

/// A dispatcher with `free` slots that answers each dispatch with the next scripted answer,
/// `Taken` once the script is used up (or `Busy` for ever, with `always_busy`).
#[derive(Default)]
struct Scripted {
    free: AtomicUsize,
    answers: Mutex<VecDeque<Handover>>,
    always_busy: bool,
    asked: AtomicUsize,
    taken: Mutex<Vec<Job>>,
    changed: Notify,
}

impl Scripted {
    fn with(free: usize, answers: &[Handover]) -> Arc<Self> {
        Arc::new(Self {
            free: AtomicUsize::new(free),
            answers: Mutex::new(answers.iter().cloned().collect()),
            ..Self::default()
        })
    }

    fn taken(&self) -> Vec<Job> {
        self.taken.lock().unwrap().clone()
    }
}

/// The dispatcher the worker owns, sharing its script with the test.
#[derive(Clone)]
struct Shared(Arc<Scripted>);

impl std::ops::Deref for Shared {
    type Target = Scripted;
    fn deref(&self) -> &Scripted {
        &self.0
    }
}

impl Dispatcher for Shared {
    fn free_slots(&self) -> usize {
        self.free.load(Ordering::SeqCst)
    }

    async fn slots_changed(&self, timeout: Duration) {
        tokio::select! {
            () = self.changed.notified() => {}
            () = tokio::time::sleep(timeout) => {}
        }
    }

    async fn dispatch(&self, job: Job) -> Result<Handover, DispatchError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let scripted = self.answers.lock().unwrap().pop_front();
        let answer = match scripted {
            Some(answer) => answer,
            None if self.always_busy => Handover::Busy,
            None => Handover::Taken {
                by: "runner-1".into(),
            },
        };
        if let Handover::Taken { .. } = answer {
            self.taken.lock().unwrap().push(job);
        }
        Ok(answer)
    }

    async fn drain(&self, _grace: Duration) {}
}

fn worker(
    queue: &MemoryQueue,
    dispatcher: &Arc<Scripted>,
    filters: Filters,
) -> Worker<Shared, MemoryQueue> {
    Worker::new(
        queue.clone(),
        Shared(dispatcher.clone()),
        filters,
        None,
        WAIT,
        Arc::new(InFlight::new(Duration::from_secs(3600))),
    )
}

fn upload(key: &str, etag: &str) -> Upload {
    Upload {
        bucket: "raw".into(),
        key: key.into(),
        size: Some(1000),
        etag: Some(etag.into()),
        event_name: "ObjectCreated:Put".into(),
        event_time: None,
    }
}

fn notification(key: &str, etag: &str) -> String {
    single_upload_notification(&upload(key, etag))
}

/// One notification naming several uploads, as S3 never sends but SNS fan-in may.
fn notification_of(uploads: &[Upload]) -> String {
    let records: Vec<serde_json::Value> = uploads
        .iter()
        .map(|u| {
            let one: serde_json::Value =
                serde_json::from_str(&single_upload_notification(u)).unwrap();
            one["Records"][0].clone()
        })
        .collect();
    serde_json::json!({ "Records": records }).to_string()
}

async fn step(worker: &Worker<Shared, MemoryQueue>) -> Outcome {
    worker
        .try_process_one(&CancellationToken::new())
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn what_is_not_an_upload_is_deleted_and_garbage_goes_to_the_dead_letters() {
    let queue = MemoryQueue::new(VISIBILITY, Some(2));
    let dispatcher = Scripted::with(4, &[]);
    let filters = Filters {
        suffixes: vec![".mp4".into()],
        ..Filters::default()
    };
    let worker = worker(&queue, &dispatcher, filters);
    let test_event = queue.push(include_str!("../src/event/testdata/s3_test_event.json"));
    let skipped = queue.push(&notification("up/notes.txt", "e1"));
    let garbage = queue.push("not an S3 event");

    assert_eq!(step(&worker).await, Outcome::Handled(3));
    assert_eq!(queue.deleted(), vec![test_event, skipped]);
    let left = queue.messages();
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].id.as_str(), left[0].receive_count, left[0].visible),
        (garbage.as_str(), 1, false)
    );
    assert!(dispatcher.taken().is_empty());

    // Hidden for the visibility timeout (30 s, longer than a 20 s poll), then received
    // again; at its next return SQS's redrive policy moves it to the dead-letter list.
    assert_eq!(step(&worker).await, Outcome::Empty);
    assert_eq!(step(&worker).await, Outcome::Handled(1));
    assert_eq!(queue.messages()[0].receive_count, 2);
    assert_eq!(step(&worker).await, Outcome::Empty);
    assert_eq!(step(&worker).await, Outcome::Empty);
    assert!(queue.messages().is_empty());
    let dead = queue.dead_letters();
    assert_eq!(
        (dead.len(), dead[0].id.as_str(), dead[0].receive_count),
        (1, garbage.as_str(), 2)
    );
}

#[tokio::test(start_paused = true)]
async fn with_no_free_slot_nothing_is_received() {
    let queue = MemoryQueue::new(VISIBILITY, Some(2));
    let dispatcher = Scripted::with(0, &[]);
    let worker = worker(&queue, &dispatcher, Filters::default());
    queue.push(&notification("up/a.mp4", "e1"));

    assert_eq!(step(&worker).await, Outcome::NoCapacity);
    let m = &queue.messages()[0];
    assert_eq!(
        (m.receive_count, m.visible),
        (0, true),
        "never received, no delivery spent"
    );
    assert_eq!(dispatcher.asked.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_refused_job_waits_in_the_consumer_and_costs_no_delivery() {
    let queue = MemoryQueue::new(VISIBILITY, Some(2));
    let dispatcher = Scripted::with(1, &[Handover::Busy, Handover::Busy]);
    let worker = worker(&queue, &dispatcher, Filters::default());
    let id = queue.push(&notification("up/a.mp4", "e1"));

    let started = Instant::now();
    assert_eq!(step(&worker).await, Outcome::Handled(1));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "it waited between tries"
    );
    assert_eq!(dispatcher.asked.load(Ordering::SeqCst), 3);
    let taken = dispatcher.taken();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].source.key, "up/a.mp4");
    assert_eq!(
        (
            taken[0].message.message_id.as_str(),
            taken[0].message.receive_count
        ),
        (id.as_str(), 1)
    );
    // The runner owns it now: still invisible, received once.
    let m = &queue.messages()[0];
    assert_eq!((m.receive_count, m.visible), (1, false));
    assert!(queue.deleted().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_job_nobody_takes_goes_back_to_the_queue_after_the_park_limit() {
    let queue = MemoryQueue::new(VISIBILITY, Some(2));
    let dispatcher = Arc::new(Scripted {
        free: AtomicUsize::new(1),
        always_busy: true,
        ..Scripted::default()
    });
    let worker = worker(&queue, &dispatcher, Filters::default());
    queue.push(&notification("up/a.mp4", "e1"));

    let started = Instant::now();
    assert_eq!(step(&worker).await, Outcome::Handled(1));
    assert!(started.elapsed() >= PARK_LIMIT, "{:?}", started.elapsed());
    assert!(started.elapsed() < PARK_LIMIT + Duration::from_secs(60));
    // Held the whole time (one delivery), then handed back: visible at once.
    let m = &queue.messages()[0];
    assert_eq!((m.receive_count, m.visible), (1, true));
    assert!(dispatcher.taken().is_empty());
    assert!(
        dispatcher.asked.load(Ordering::SeqCst) > 10,
        "tried again and again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_message_of_several_uploads_becomes_one_message_per_upload() {
    let queue = MemoryQueue::new(VISIBILITY, Some(2));
    let dispatcher = Scripted::with(4, &[]);
    let worker = worker(&queue, &dispatcher, Filters::default());
    let both = queue.push(&notification_of(&[
        upload("up/a.mp4", "e1"),
        upload("up/b.mp4", "e2"),
    ]));

    assert_eq!(step(&worker).await, Outcome::Handled(1));
    assert_eq!(queue.deleted(), vec![both]);
    let bodies: Vec<String> = queue.messages().into_iter().map(|m| m.body).collect();
    assert_eq!(
        bodies,
        vec![
            notification("up/a.mp4", "e1"),
            notification("up/b.mp4", "e2")
        ]
    );
    assert!(
        dispatcher.taken().is_empty(),
        "each goes out on its own next step"
    );

    assert_eq!(step(&worker).await, Outcome::Handled(2));
    let keys: Vec<String> = dispatcher
        .taken()
        .into_iter()
        .map(|j| j.source.key)
        .collect();
    assert_eq!(keys, vec!["up/a.mp4", "up/b.mp4"]);
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_notification_of_bytes_in_flight_is_deleted() {
    let queue = MemoryQueue::new(VISIBILITY, Some(2));
    let dispatcher = Scripted::with(4, &[]);
    let worker = worker(&queue, &dispatcher, Filters::default());
    queue.push(&notification("up/a.mp4", "e1"));
    assert_eq!(step(&worker).await, Outcome::Handled(1));
    let duplicate = queue.push(&notification("up/a.mp4", "e1"));
    let new_bytes = queue.push(&notification("up/a.mp4", "e2"));

    assert_eq!(step(&worker).await, Outcome::Handled(2));
    assert_eq!(queue.deleted(), vec![duplicate]);
    let ids: Vec<String> = dispatcher
        .taken()
        .iter()
        .map(|j| j.message.message_id.clone())
        .collect();
    assert_eq!(ids.len(), 2, "the first upload and the new bytes: {ids:?}");
    assert_eq!(ids[1], new_bytes);
}
