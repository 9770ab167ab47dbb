//! A queue in memory with SQS's rules for what the loop relies on: a received message is
//! invisible for the visibility timeout, every receive counts, a message received more than
//! the redrive limit moves to a dead-letter list instead, and a long poll waits for the first
//! message. Its clock is tokio's, so a test with paused time runs minutes of waiting at once.
//! For tests that drive the loop a step at a time; the real queue is SQS.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::queue::{QueueError, QueueMessageRef, Received, Settlement};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::source::{Held, UploadQueue};

/// One message as the queue keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its id.
    pub id: String,
    /// Its body.
    pub body: String,
    /// How many times it was received.
    pub receive_count: u32,
    /// Whether a receive would return it now.
    pub visible: bool,
}

#[derive(Debug)]
struct Message {
    id: String,
    body: String,
    receive_count: u32,
    visible_at: Instant,
}

#[derive(Debug, Default)]
struct State {
    sent: u64,
    messages: Vec<Message>,
    dead: Vec<Message>,
    deleted: Vec<String>,
}

/// The queue; clones share it.
#[derive(Debug, Clone)]
pub struct MemoryQueue {
    url: String,
    visibility: Duration,
    max_receives: Option<u32>,
    state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
}

impl MemoryQueue {
    /// An empty queue whose messages are hidden for `visibility` when received, and move to
    /// the dead-letter list on the receive after `max_receives` (none: never).
    pub fn new(visibility: Duration, max_receives: Option<u32>) -> Self {
        Self {
            url: "memory://uploads".into(),
            visibility,
            max_receives,
            state: Arc::default(),
            arrived: Arc::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a message, visible at once; returns its id.
    pub fn push(&self, body: &str) -> String {
        let mut state = self.state();
        state.sent += 1;
        let id = format!("m-{}", state.sent);
        state.messages.push(Message {
            id: id.clone(),
            body: body.to_string(),
            receive_count: 0,
            visible_at: Instant::now(),
        });
        self.arrived.notify_waiters();
        id
    }

    /// The messages in the queue, oldest first.
    pub fn messages(&self) -> Vec<Stored> {
        Self::stored(&self.state().messages)
    }

    /// The messages moved to the dead-letter list.
    pub fn dead_letters(&self) -> Vec<Stored> {
        Self::stored(&self.state().dead)
    }

    /// The ids of the messages deleted, in order.
    pub fn deleted(&self) -> Vec<String> {
        self.state().deleted.clone()
    }

    fn stored(messages: &[Message]) -> Vec<Stored> {
        let now = Instant::now();
        messages
            .iter()
            .map(|m| Stored {
                id: m.id.clone(),
                body: m.body.clone(),
                receive_count: m.receive_count,
                visible: m.visible_at <= now,
            })
            .collect()
    }

    /// Sets when the message `id` becomes visible; false when it is gone.
    fn set_visible_at(&self, id: &str, at: Instant) -> bool {
        let mut state = self.state();
        let Some(m) = state.messages.iter_mut().find(|m| m.id == id) else {
            return false;
        };
        m.visible_at = at;
        drop(state);
        self.arrived.notify_waiters();
        true
    }

    /// One receive now: what is visible, each counted; `None` for when to look again.
    fn take(&self, max: usize) -> Result<Vec<Received>, Option<Instant>> {
        let now = Instant::now();
        let mut state = self.state();
        let mut taken = Vec::new();
        let mut index = 0;
        while index < state.messages.len() && taken.len() < max {
            let m = &mut state.messages[index];
            if m.visible_at > now {
                index += 1;
                continue;
            }
            if self.max_receives.is_some_and(|max| m.receive_count >= max) {
                let dead = state.messages.remove(index);
                state.dead.push(dead);
                continue;
            }
            m.receive_count += 1;
            m.visible_at = now + self.visibility;
            taken.push(Received {
                message: QueueMessageRef {
                    queue_url: self.url.clone(),
                    receipt_handle: format!("{}#{}", m.id, m.receive_count),
                    message_id: m.id.clone(),
                    receive_count: m.receive_count,
                },
                body: m.body.clone(),
                sent_timestamp_ms: None,
            });
            index += 1;
        }
        if taken.is_empty() {
            Err(state.messages.iter().map(|m| m.visible_at).min())
        } else {
            Ok(taken)
        }
    }
}

impl UploadQueue for MemoryQueue {
    type Hold = MemoryHold;

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, QueueError> {
        let deadline = Instant::now() + wait;
        loop {
            let arrived = self.arrived.notified();
            let next = match self.take(max.max(1)) {
                Ok(taken) => return Ok(taken),
                Err(next) => next,
            };
            if Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            let until = next.map_or(deadline, |at| at.min(deadline));
            tokio::select! {
                () = arrived => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    async fn delete(&self, message: &QueueMessageRef) -> Result<(), QueueError> {
        let mut state = self.state();
        if let Some(index) = state
            .messages
            .iter()
            .position(|m| m.id == message.message_id)
        {
            let m = state.messages.remove(index);
            state.deleted.push(m.id);
        }
        Ok(())
    }

    async fn hand_back(&self, message: &QueueMessageRef) {
        self.set_visible_at(&message.message_id, Instant::now());
    }

    async fn send(&self, body: String) -> Result<String, QueueError> {
        Ok(self.push(&body))
    }

    fn hold(&self, message: &QueueMessageRef, visibility: Duration) -> MemoryHold {
        // A heartbeat that never fails: hidden until settled, or `visibility` after a drop.
        self.set_visible_at(
            &message.message_id,
            Instant::now() + Duration::from_secs(43_200),
        );
        MemoryHold {
            queue: self.clone(),
            message: message.clone(),
            visibility,
            settled: false,
        }
    }
}

/// A message held by [`MemoryQueue::hold`].
#[derive(Debug)]
pub struct MemoryHold {
    queue: MemoryQueue,
    message: QueueMessageRef,
    visibility: Duration,
    settled: bool,
}

impl Held for MemoryHold {
    async fn settle(mut self, how: Settlement) -> Result<(), QueueError> {
        self.settled = true;
        match how {
            Settlement::Delete => self.queue.delete(&self.message).await,
            Settlement::HandBack => {
                self.queue.hand_back(&self.message).await;
                Ok(())
            }
        }
    }
}

impl Drop for MemoryHold {
    fn drop(&mut self) {
        // The heartbeat stops: the visibility last set runs out.
        if !self.settled {
            self.queue
                .set_visible_at(&self.message.message_id, Instant::now() + self.visibility);
        }
    }
}
