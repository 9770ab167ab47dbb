//! A fault-injecting HTTP proxy in front of moto's ECS. moto always starts the task, but real
//! ECS answers RunTask with `failures[]` when Fargate Spot has no capacity; the proxy gives
//! that answer to the next N RunTask calls and forwards everything else to moto unchanged.
//! The consumer reaches it through `AWS_ENDPOINT_URL_ECS`, the SDK's per-service endpoint.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// What the proxy saw and is told to do.
#[derive(Default)]
struct State {
    fail_next_run_tasks: AtomicUsize,
    throttle_next_run_tasks: AtomicUsize,
    /// Every RunTask request body, and whether it was answered with failures.
    run_tasks: Mutex<Vec<(Value, bool)>>,
}

/// The proxy; it lives as long as the test process (its threads are detached).
pub struct EcsProxy {
    state: Arc<State>,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

impl EcsProxy {
    /// Starts a proxy to `upstream` (`http://HOST:PORT`).
    pub fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State::default());
        let upstream = upstream.strip_prefix("http://").unwrap().to_string();
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (state, upstream) = (shared.clone(), upstream.clone());
                std::thread::spawn(move || serve(client, &upstream, &state));
            }
        });
        Self { state, endpoint }
    }

    /// Answers the next `n` RunTask calls with a no-capacity failure.
    pub fn fail_next_run_tasks(&self, n: usize) {
        self.state.fail_next_run_tasks.store(n, Ordering::SeqCst);
    }

    /// Answers the next `n` RunTask calls with ThrottlingException (HTTP 400).
    pub fn throttle_next_run_tasks(&self, n: usize) {
        self.state
            .throttle_next_run_tasks
            .store(n, Ordering::SeqCst);
    }

    /// Every RunTask request so far and whether it was failed.
    pub fn run_tasks(&self) -> Vec<(Value, bool)> {
        self.state.run_tasks.lock().unwrap().clone()
    }
}

/// One client connection, kept alive across requests as the SDK expects.
fn serve(client: TcpStream, upstream: &str, state: &State) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut client = client;
    loop {
        let Some((head, body)) = read_request(&mut reader) else {
            return;
        };
        let target = header(&head, "x-amz-target").unwrap_or_default();
        let response = if target.ends_with(".RunTask") {
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let take = |counter: &AtomicUsize| {
                counter
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            };
            let throttle = take(&state.throttle_next_run_tasks);
            let fail = !throttle && take(&state.fail_next_run_tasks);
            state
                .run_tasks
                .lock()
                .unwrap()
                .push((request, fail || throttle));
            if throttle {
                throttled()
            } else if fail {
                no_capacity()
            } else {
                forward(upstream, &head, &body)
            }
        } else {
            forward(upstream, &head, &body)
        };
        if client.write_all(&response).is_err() {
            return;
        }
    }
}

/// What ECS says when Spot has no capacity (the reason text is ECS's own).
fn no_capacity() -> Vec<u8> {
    let body = serde_json::json!({
        "tasks": [],
        "failures": [{
            "arn": "arn:aws:ecs:us-east-1:123456789012:cluster/vod",
            "reason": "Capacity is unavailable at this time. Please try again later or in a different availability zone",
        }],
    })
    .to_string();
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// ECS's answer when RunTask's rate limit is exceeded.
fn throttled() -> Vec<u8> {
    let body = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-ErrorType: ThrottlingException\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Sends the request to moto on a fresh connection and returns its whole response.
fn forward(upstream: &str, head: &str, body: &[u8]) -> Vec<u8> {
    let mut lines: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    let mut request = lines.join("\r\n").into_bytes();
    request.extend_from_slice(b"\r\n\r\n");
    request.extend_from_slice(body);
    let mut stream = TcpStream::connect(upstream).unwrap();
    stream.write_all(&request).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    // The client keeps its connection to us; moto's "Connection: close" is for our side only.
    let text = String::from_utf8_lossy(&response);
    match text.find("\r\n\r\n") {
        Some(end) => {
            let head: Vec<&str> = text[..end]
                .split("\r\n")
                .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                .collect();
            let body = &response[end + 4..];
            let framed = head.iter().any(|l| {
                let l = l.to_ascii_lowercase();
                l.starts_with("content-length:") || l.starts_with("transfer-encoding:")
            });
            let length = format!("Content-Length: {}", body.len());
            let mut head = head;
            if !framed {
                head.push(&length);
            }
            let mut out = head.join("\r\n").into_bytes();
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(body);
            out
        }
        None => response,
    }
}

/// Reads one request: its head (without the blank line) and its body.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let head = head.trim_end().to_string();
    let length: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((head, body))
}

fn header(head: &str, name: &str) -> Option<String> {
    head.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}
