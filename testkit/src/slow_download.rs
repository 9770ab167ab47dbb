//! A TCP proxy in front of moto that trickles one kind of response: every request containing a
//! needle (`GET /bucket/key`) and no `Range` header has its response forwarded at a fixed rate.
//! Ranged reads pass at full speed. It shows that a job works on a source while its download is
//! still under way, and it records when that download ended.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The proxy; its threads are detached and end with the test process.
pub struct SlowDownload {
    finished: Arc<AtomicBool>,
    /// `http://127.0.0.1:PORT`: give this to the processes as AWS_ENDPOINT_URL.
    pub endpoint: String,
}

impl SlowDownload {
    /// Forwards everything to `upstream` (`http://HOST:PORT`), trickling the responses to whole
    /// (unranged) requests containing `needle` at `bytes_per_second`.
    pub fn start(upstream: &str, needle: &str, bytes_per_second: usize) -> Self {
        let upstream = upstream.strip_prefix("http://").unwrap().to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let finished = Arc::new(AtomicBool::new(false));
        let (done, needle) = (finished.clone(), needle.as_bytes().to_vec());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let slow = Arc::new(AtomicBool::new(false));
                let (client_read, server_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (needle, marked) = (needle.clone(), slow.clone());
                std::thread::spawn(move || {
                    forward(client_read, server_write, |request| {
                        let text = String::from_utf8_lossy(request).to_lowercase();
                        let whole = !text.contains("\r\nrange:");
                        let hit = request.windows(needle.len()).any(|w| w == needle);
                        marked.store(hit && whole, Ordering::SeqCst);
                    })
                });
                let done = done.clone();
                std::thread::spawn(move || {
                    trickle(server, client, &slow, bytes_per_second);
                    if slow.load(Ordering::SeqCst) {
                        done.store(true, Ordering::SeqCst);
                    }
                });
            }
        });
        Self { finished, endpoint }
    }

    /// Whether a trickled response has been forwarded to its end.
    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }
}

/// Copies requests from `from` to `to`, showing each chunk to `look` first.
fn forward(mut from: TcpStream, mut to: TcpStream, mut look: impl FnMut(&[u8])) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        look(&buf[..n]);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Copies responses from `from` to `to`, at `bytes_per_second` while `slow` says so.
fn trickle(mut from: TcpStream, mut to: TcpStream, slow: &AtomicBool, bytes_per_second: usize) {
    let step = (bytes_per_second / 20).max(1);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let limit = if slow.load(Ordering::SeqCst) {
            step.min(buf.len())
        } else {
            buf.len()
        };
        let n = match from.read(&mut buf[..limit]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if slow.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
