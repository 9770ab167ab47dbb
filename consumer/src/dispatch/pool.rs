//! The warm pool: transcoders already running `transcoder serve`, reached over gRPC.
//!
//! Each configured URL becomes one member per address its host resolves to, so an ECS service
//! discovery name (one A record per task) spreads jobs over every task; names are looked up
//! again at every health round, so tasks that come and go are followed. A member takes jobs
//! while the standard health service says SERVING and it runs fewer than
//! `jobs_per_endpoint` of ours; a RESOURCE_EXHAUSTED answer (someone else's job, a `submit`)
//! rests it until the next round.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::rpc::client::{self, BearerToken, EndpointOptions};
use common::rpc::{Refusal, Target};
use proto::v1;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::Channel;

use super::follow::{follow, FollowContext};
use super::{DispatchError, Dispatcher, Handover, Job};

/// A health check or a call's first answer slower than this counts as no answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How to build the pool.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// gRPC URLs: `http://HOST:PORT` or `https://HOST:PORT`.
    pub endpoints: Vec<String>,
    /// Bearer token the transcoders require.
    pub auth_token: Option<String>,
    /// Extra CA certificate for https:// endpoints.
    pub ca_cert: Option<PathBuf>,
    /// Jobs sent to one member at once.
    pub jobs_per_endpoint: usize,
    /// Time between health (and DNS) rounds.
    pub health_interval: Duration,
}

/// The warm transcoders. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct WarmPool {
    inner: Arc<Inner>,
}

struct Inner {
    targets: Vec<Target>,
    token: BearerToken,
    ca_cert: Option<PathBuf>,
    jobs_per_endpoint: usize,
    health_interval: Duration,
    members: Mutex<Vec<Member>>,
    /// Signalled when a slot may have freed.
    changed: Notify,
    /// Round-robin start, so equal members share the work.
    next: AtomicUsize,
    followers: TaskTracker,
    /// Cancelled when the grace period ends: followers drop their streams and hand back.
    stop_followers: CancellationToken,
    /// Cancelled when the pool is drained: the health rounds end.
    stop_rounds: CancellationToken,
    follow: FollowContext,
}

/// One transcoder: one address of one target.
struct Member {
    /// `scheme://address:port`: its name in logs, and its identity across DNS rounds.
    url: String,
    target: usize,
    channel: Channel,
    healthy: bool,
    /// Our jobs running on it.
    running: usize,
    /// It said RESOURCE_EXHAUSTED: no new job before this.
    resting_until: Option<Instant>,
    /// Its address left DNS; removed once its jobs end.
    gone: bool,
}

impl Member {
    fn free(&self, per_member: usize, now: Instant) -> usize {
        let resting = self.resting_until.is_some_and(|t| t > now);
        if !self.healthy || self.gone || resting {
            0
        } else {
            per_member.saturating_sub(self.running)
        }
    }
}

/// A slot reserved on one member for one call.
struct Slot {
    url: String,
    channel: Channel,
}

impl WarmPool {
    /// Builds the pool and starts its health rounds; the first round runs before this
    /// returns, so slots are known at once.
    pub async fn start(settings: PoolSettings, follow: FollowContext) -> Result<Self, String> {
        let pool = Self::new(settings, follow)?;
        pool.round().await;
        let rounds = pool.clone();
        tokio::spawn(async move {
            let stop = rounds.inner.stop_rounds.clone();
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(rounds.inner.health_interval) => rounds.round().await,
                }
            }
        });
        Ok(pool)
    }

    /// The pool with no member yet and no round running.
    fn new(settings: PoolSettings, follow: FollowContext) -> Result<Self, String> {
        let targets = settings
            .endpoints
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
            .map(Target::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        if targets.is_empty() {
            return Err("no transcoder endpoints".into());
        }
        Ok(Self {
            inner: Arc::new(Inner {
                targets,
                token: BearerToken::new(settings.auth_token.as_deref())
                    .map_err(|e| e.to_string())?,
                ca_cert: settings.ca_cert,
                jobs_per_endpoint: settings.jobs_per_endpoint.max(1),
                health_interval: settings.health_interval,
                members: Mutex::new(Vec::new()),
                changed: Notify::new(),
                next: AtomicUsize::new(0),
                followers: TaskTracker::new(),
                stop_followers: CancellationToken::new(),
                stop_rounds: CancellationToken::new(),
                follow,
            }),
        })
    }

    fn members(&self) -> MutexGuard<'_, Vec<Member>> {
        // A panic while holding the lock leaves counts that are still usable.
        self.inner.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Members known now, healthy or not, for logs and tests.
    pub fn describe(&self) -> Vec<(String, bool, usize)> {
        self.members()
            .iter()
            .map(|m| (m.url.clone(), m.healthy, m.running))
            .collect()
    }

    /// One round: resolve every target, follow membership changes, ask each member's health.
    async fn round(&self) {
        for (index, target) in self.inner.targets.iter().enumerate() {
            match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
                Ok(addresses) => {
                    let urls: HashSet<String> = addresses.map(|a| target.at(a)).collect();
                    self.update_members(index, target, &urls);
                }
                // Keep what we had: a DNS hiccup must not empty the pool.
                Err(e) => {
                    tracing::warn!(host = %target.host, error = %e, "cannot resolve a transcoder endpoint")
                }
            }
        }
        let checks: Vec<(String, Channel)> = self
            .members()
            .iter()
            .filter(|m| !m.gone)
            .map(|m| (m.url.clone(), m.channel.clone()))
            .collect();
        let results =
            futures::future::join_all(checks.into_iter().map(|(url, channel)| async move {
                let serving = client::is_serving(channel.clone(), CALL_TIMEOUT).await == Ok(true);
                // Full with work we did not send (a split job's ranges, a direct submit).
                let full = client::has_room(channel, CALL_TIMEOUT).await == Ok(false);
                (url, serving, full)
            }))
            .await;
        let mut freed = false;
        {
            let mut members = self.members();
            for (url, serving, full) in results {
                if let Some(m) = members.iter_mut().find(|m| m.url == url) {
                    if serving != m.healthy {
                        tracing::info!(transcoder = %url, serving, "transcoder health changed");
                    }
                    freed |= serving && !m.healthy;
                    m.healthy = serving;
                    freed |= m.resting_until.take().is_some();
                    // Busy with none of ours: it rests until the next round, so the consumer
                    // neither receives for it nor sends it a job it would refuse. Busy with
                    // ours: our own count says so already.
                    if full && m.running == 0 {
                        m.resting_until = Some(Instant::now() + self.inner.health_interval);
                    }
                }
            }
        }
        if freed {
            self.inner.changed.notify_waiters();
        }
    }

    fn update_members(&self, index: usize, target: &Target, urls: &HashSet<String>) {
        let mut members = self.members();
        for m in members.iter_mut().filter(|m| m.target == index) {
            let present = urls.contains(&m.url);
            if m.gone == present {
                tracing::info!(transcoder = %m.url, present, "transcoder address changed in DNS");
            }
            m.gone = !present;
        }
        members.retain(|m| !(m.gone && m.running == 0));
        for url in urls {
            if members.iter().any(|m| &m.url == url) {
                continue;
            }
            let tls_domain = (target.tls && target.host.parse::<std::net::IpAddr>().is_err())
                .then_some(target.host.as_str());
            let options = EndpointOptions {
                ca_cert: self.inner.ca_cert.as_deref(),
                tls_domain,
            };
            match client::endpoint(url, &options) {
                Ok(endpoint) => {
                    let channel = endpoint.connect_timeout(CALL_TIMEOUT).connect_lazy();
                    tracing::info!(transcoder = %url, "transcoder added to the pool");
                    members.push(Member {
                        url: url.clone(),
                        target: index,
                        channel,
                        healthy: false,
                        running: 0,
                        resting_until: None,
                        gone: false,
                    });
                }
                Err(e) => {
                    tracing::error!(transcoder = %url, error = %e, "cannot use a transcoder endpoint")
                }
            }
        }
    }

    /// Reserves a slot on the least-loaded free member not yet tried.
    fn reserve(&self, tried: &HashSet<String>) -> Option<Slot> {
        let per_member = self.inner.jobs_per_endpoint;
        let now = Instant::now();
        let mut members = self.members();
        let count = members.len();
        if count == 0 {
            return None;
        }
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed) % count;
        let chosen = (0..count)
            .map(|i| (start + i) % count)
            .filter(|&i| members[i].free(per_member, now) > 0 && !tried.contains(&members[i].url))
            .min_by_key(|&i| members[i].running)?;
        let member = &mut members[chosen];
        member.running += 1;
        Some(Slot {
            url: member.url.clone(),
            channel: member.channel.clone(),
        })
    }

    /// Gives a slot back; `refusal` says what the member answered, if it did not take the job.
    fn release(&self, url: &str, refusal: Option<&Refusal>) {
        {
            let mut members = self.members();
            if let Some(m) = members.iter_mut().find(|m| m.url == url) {
                m.running = m.running.saturating_sub(1);
                match refusal {
                    Some(Refusal::Busy) => {
                        m.resting_until = Some(Instant::now() + self.inner.health_interval)
                    }
                    Some(Refusal::Down(_)) => m.healthy = false,
                    Some(Refusal::Rejected(_)) | None => {}
                }
            }
            members.retain(|m| !(m.gone && m.running == 0));
        }
        self.inner.changed.notify_waiters();
    }

    /// Starts the job on one member's slot.
    async fn call(
        &self,
        slot: &Slot,
        job: &Job,
    ) -> Result<tonic::Streaming<v1::TranscodeEvent>, Refusal> {
        let mut client = client::client(slot.channel.clone(), self.inner.token.clone());
        let status = self.inner.follow.reporter.config();
        let request = v1::TranscodeRequest {
            source: Some(v1::S3Object {
                bucket: job.source.bucket.clone(),
                key: job.source.key.clone(),
            }),
            output: job.output.as_ref().map(|o| v1::S3Prefix {
                bucket: o.bucket.clone(),
                prefix: o.prefix.clone(),
            }),
            overrides: None,
            message: Some(v1::QueueMessage {
                queue_url: job.message.queue_url.clone(),
                receipt_handle: job.message.receipt_handle.clone(),
                message_id: job.message.message_id.clone(),
                receive_count: job.message.receive_count,
            }),
            job_id: job.job_id.clone(),
            // If this consumer goes away (a restart), the transcoder finishes the job and
            // reports it as this consumer would have.
            report: Some(v1::StatusReport {
                notify_queue_url: status.notify_queue_url.clone().unwrap_or_default(),
                delete_source: status.delete_source,
            }),
        };
        match tokio::time::timeout(CALL_TIMEOUT, client.transcode(request)).await {
            Err(_) => Err(Refusal::Down("no answer in time".into())),
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(Refusal::of(&status)),
        }
    }
}

impl Dispatcher for WarmPool {
    fn free_slots(&self) -> usize {
        let now = Instant::now();
        let per_member = self.inner.jobs_per_endpoint;
        self.members().iter().map(|m| m.free(per_member, now)).sum()
    }

    async fn slots_changed(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.inner.changed.notified()).await;
    }

    async fn dispatch(&self, job: Job) -> Result<Handover, DispatchError> {
        let mut tried = HashSet::new();
        let mut last_down = None;
        while let Some(slot) = self.reserve(&tried) {
            tried.insert(slot.url.clone());
            match self.call(&slot, &job).await {
                Ok(stream) => {
                    let by = slot.url.clone();
                    let pool = self.clone();
                    let stop = self.inner.stop_followers.clone();
                    let job = job.clone();
                    self.inner.followers.spawn(async move {
                        follow(stream, &job, &slot.url, &pool.inner.follow, &stop).await;
                        pool.release(&slot.url, None);
                    });
                    return Ok(Handover::Taken { by });
                }
                Err(refusal) => {
                    match &refusal {
                        Refusal::Busy => {
                            tracing::info!(transcoder = %slot.url, "transcoder busy; trying the next")
                        }
                        Refusal::Down(why) => {
                            tracing::warn!(transcoder = %slot.url, error = %why, "transcoder did not take the job; trying the next");
                            last_down = Some(format!("{}: {why}", slot.url));
                        }
                        Refusal::Rejected(why) => {
                            let why = format!("{} refused the job: {why}", slot.url);
                            self.release(&slot.url, Some(&refusal));
                            return Err(DispatchError(why));
                        }
                    }
                    self.release(&slot.url, Some(&refusal));
                }
            }
        }
        // Nobody took it: busy members wait for a later delivery; a member that failed makes
        // it an error, so the message goes back at once (while that member counts as down).
        match last_down {
            Some(why) => Err(DispatchError(format!(
                "no warm transcoder took the job (last: {why})"
            ))),
            None => Ok(Handover::Busy),
        }
    }

    async fn drain(&self, grace: Duration) {
        let followers = &self.inner.followers;
        followers.close();
        if !followers.is_empty() {
            tracing::info!(
                jobs = followers.len(),
                grace_s = grace.as_secs(),
                "waiting for running jobs"
            );
        }
        if tokio::time::timeout(grace, followers.wait()).await.is_err() {
            tracing::warn!(
                jobs = followers.len(),
                "grace period over; leaving the jobs still running to their transcoders"
            );
            self.inner.stop_followers.cancel();
            followers.wait().await;
        }
        self.inner.stop_rounds.cancel();
    }
}

#[cfg(test)]
mod tests {
    use aws_config::BehaviorVersion;
    use common::status::{StatusConfig, StatusReporter};
    use common::storage::S3Store;

    use super::*;
    use crate::queue::Inbox;

    /// A pool on one target whose members the test sets by hand (no network: channels
    /// connect lazily and no round runs).
    fn pool(jobs_per_endpoint: usize) -> WarmPool {
        let config = aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let sqs = aws_sdk_sqs::Client::new(&config);
        let follow = FollowContext {
            inbox: Inbox::new(sqs.clone(), "http://queue".into()),
            reporter: StatusReporter::new(StatusConfig::default(), sqs, S3Store::new(&config)),
            in_flight: Arc::new(crate::in_flight::InFlight::new(Duration::from_secs(60))),
        };
        let settings = PoolSettings {
            endpoints: vec!["http://warm.vod.local:50051".into()],
            auth_token: None,
            ca_cert: None,
            jobs_per_endpoint,
            health_interval: Duration::from_secs(60),
        };
        WarmPool::new(settings, follow).unwrap()
    }

    fn resolve(pool: &WarmPool, urls: &[&str]) {
        let urls = urls.iter().map(|u| u.to_string()).collect();
        let target = pool.inner.targets[0].clone();
        pool.update_members(0, &target, &urls);
    }

    fn set_healthy(pool: &WarmPool) {
        for m in pool.members().iter_mut() {
            m.healthy = true;
        }
    }

    #[tokio::test]
    async fn members_follow_dns_and_leave_only_when_their_jobs_end() {
        let pool = pool(1);
        let (a, b) = ("http://10.0.0.1:50051", "http://10.0.0.2:50051");
        resolve(&pool, &[a, b]);
        assert_eq!(pool.describe().len(), 2);
        assert_eq!(
            pool.free_slots(),
            0,
            "no slot before a health check says SERVING"
        );
        set_healthy(&pool);
        assert_eq!(pool.free_slots(), 2);

        let slot = pool.reserve(&HashSet::new()).unwrap();
        assert_eq!(pool.free_slots(), 1);
        let other = if slot.url == a { b } else { a };
        let second = pool.reserve(&HashSet::new()).unwrap();
        assert_eq!(second.url, other, "the idle member is chosen");
        assert!(pool.reserve(&HashSet::new()).is_none());
        pool.release(&second.url, None);

        // The busy member's address leaves DNS: it takes no new job but stays until its job
        // ends; the other one stays.
        resolve(&pool, &[other]);
        assert_eq!(pool.describe().len(), 2);
        assert_eq!(pool.free_slots(), 1);
        pool.release(&slot.url, None);
        let left: Vec<String> = pool.describe().into_iter().map(|(u, _, _)| u).collect();
        assert_eq!(left, [other]);
    }

    #[tokio::test]
    async fn a_busy_answer_rests_a_member_and_a_failure_marks_it_down() {
        let pool = pool(2);
        resolve(&pool, &["http://10.0.0.1:50051", "http://10.0.0.2:50051"]);
        set_healthy(&pool);
        assert_eq!(pool.free_slots(), 4);
        let slot = pool.reserve(&HashSet::new()).unwrap();
        pool.release(&slot.url, Some(&Refusal::Busy));
        assert_eq!(pool.free_slots(), 2, "resting until the next round");
        let tried = HashSet::from([slot.url.clone()]);
        let next = pool.reserve(&tried).unwrap();
        assert_ne!(next.url, slot.url, "a tried member is not tried again");
        pool.release(&next.url, Some(&Refusal::Down("refused".into())));
        assert_eq!(pool.free_slots(), 0);
    }
}
