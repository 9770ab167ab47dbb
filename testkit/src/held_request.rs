//! A TCP proxy in front of moto that holds back one request: the first whose bytes contain a
//! given needle (`PUT /bucket/key?`) waits before it is forwarded. It stretches a moment that
//! lasts milliseconds (a job's switch to its new version, say) into one a test can act in.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The proxy; its threads are detached and end with the test process.
pub struct HeldRequest {
    held: Arc<AtomicBool>,
    /// `http://127.0.0.1:PORT`: give this to the processes as AWS_ENDPOINT_URL.
    pub endpoint: String,
}

impl HeldRequest {
    /// Forwards everything to `upstream` (`http://HOST:PORT`), holding the first request
    /// containing `needle` for `hold`.
    pub fn start(upstream: &str, needle: &str, hold: Duration) -> Self {
        let upstream = upstream.strip_prefix("http://").unwrap().to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let held = Arc::new(AtomicBool::new(false));
        let (seen, needle) = (held.clone(), needle.as_bytes().to_vec());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let (seen, needle) = (seen.clone(), needle.clone());
                let (client_read, server_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    pump(client_read, server_write, Some((needle, seen, hold)))
                });
                std::thread::spawn(move || pump(server, client, None));
            }
        });
        Self { held, endpoint }
    }

    /// Whether the request has arrived (it is being held, or was).
    pub fn arrived(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }
}

/// Copies `from` to `to` until either closes; with `hold`, the first chunk containing the
/// needle waits first (requests are written whole, so a chunk starts with one's first line).
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    hold: Option<(Vec<u8>, Arc<AtomicBool>, Duration)>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((needle, seen, hold)) = &hold {
            let hit = buf[..n]
                .windows(needle.len())
                .any(|w| w == needle.as_slice());
            if hit && !seen.swap(true, Ordering::SeqCst) {
                std::thread::sleep(*hold);
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
