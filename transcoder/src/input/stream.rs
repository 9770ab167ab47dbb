//! Feeding a source to a tool's stdin while it downloads: the download writes the object to a
//! local file in order and says how far it has got; the feeder sends the pieces of the stream
//! order (`Piece`s: ranges of that file, or bytes we made, such as a moved MP4 index) as soon
//! as their bytes are there.

use std::io::SeekFrom;
use std::path::PathBuf;

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::Piece;

/// How far a download has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Arrival {
    /// Bytes written to the local file, from its start.
    pub bytes: u64,
    /// The download stopped before the end and will write nothing more.
    pub failed: bool,
    /// The download ended well: the file is whole.
    pub complete: bool,
}

/// Waits for a download to end well: what reads the source as a file (seeking into it) needs
/// all of it.
#[derive(Debug, Clone)]
pub struct Downloaded(watch::Receiver<Arrival>);

impl Downloaded {
    /// Follows the download that reports to `arrival`.
    pub fn new(arrival: watch::Receiver<Arrival>) -> Self {
        Self(arrival)
    }

    /// A file that is already whole.
    pub fn already() -> Self {
        let (_, arrival) = watch::channel(Arrival {
            complete: true,
            ..Arrival::default()
        });
        Self(arrival)
    }

    /// Waits until the file is whole; an error when the download failed instead.
    pub async fn wait(&mut self) -> std::io::Result<()> {
        let stopped = || std::io::Error::other("the source's download failed");
        let ended = self
            .0
            .wait_for(|a| a.complete || a.failed)
            .await
            .map_err(|_| stopped())?;
        if ended.complete {
            Ok(())
        } else {
            Err(stopped())
        }
    }
}

/// A source streamed from a file that is still being written.
#[derive(Debug)]
pub struct Streamed {
    /// The local file the download writes, in the object's order.
    path: PathBuf,
    /// The object's size.
    size: u64,
    /// What to send, in order.
    pieces: Vec<Piece>,
    /// The download's progress.
    arrival: watch::Receiver<Arrival>,
}

/// Bytes read from the file and written to the tool at a time.
const CHUNK: usize = 256 * 1024;

impl Streamed {
    /// A stream of `pieces` of the `size`-byte object being downloaded to `path`.
    pub fn new(
        path: PathBuf,
        size: u64,
        pieces: Vec<Piece>,
        arrival: watch::Receiver<Arrival>,
    ) -> Self {
        Self {
            path,
            size,
            pieces,
            arrival,
        }
    }

    /// The object's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Writes every piece to `to`, waiting for the download where it has not got yet. A
    /// reader that stops early (ffprobe has what it needs) ends the feed without an error.
    pub async fn feed(&self, mut to: impl AsyncWrite + Unpin) -> std::io::Result<()> {
        let result = self.feed_all(&mut to).await;
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }

    async fn feed_all(&self, to: &mut (impl AsyncWrite + Unpin)) -> std::io::Result<()> {
        let mut file: Option<tokio::fs::File> = None;
        let mut arrival = self.arrival.clone();
        let mut buffer = vec![0u8; CHUNK];
        for piece in &self.pieces {
            let (start, end) = match piece {
                Piece::Made(bytes) => {
                    to.write_all(bytes).await?;
                    continue;
                }
                Piece::Object { start, end } => (*start, *end),
            };
            let mut at = start;
            while at < end {
                let arrived = wait_past(&mut arrival, at).await?;
                let file = match &mut file {
                    Some(file) => file,
                    None => file.insert(tokio::fs::File::open(&self.path).await?),
                };
                let want = (end.min(arrived) - at).min(CHUNK as u64) as usize;
                file.seek(SeekFrom::Start(at)).await?;
                file.read_exact(&mut buffer[..want]).await?;
                to.write_all(&buffer[..want]).await?;
                at += want as u64;
            }
        }
        to.shutdown().await
    }
}

/// Waits until the download has written past `at`; returns how far it has got.
async fn wait_past(arrival: &mut watch::Receiver<Arrival>, at: u64) -> std::io::Result<u64> {
    let stopped = || std::io::Error::other("the download stopped before the end");
    let now = arrival
        .wait_for(|a| a.bytes > at || a.failed)
        .await
        .map_err(|_| stopped())?;
    if now.bytes > at {
        Ok(now.bytes)
    } else {
        Err(stopped())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pieces_are_sent_in_order_as_their_bytes_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("source");
        let object: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let (arrived, arrival) = watch::channel(Arrival::default());
        let pieces = vec![
            Piece::Object { start: 0, end: 10 },
            Piece::Made(b"moved".to_vec()),
            Piece::Object {
                start: 10,
                end: 1000,
            },
        ];
        let streamed = Streamed::new(path.clone(), 1000, pieces, arrival);
        let (reader, writer) = tokio::io::duplex(64);
        let feeding = tokio::spawn(async move { streamed.feed(writer).await });
        let reading = tokio::spawn(async move {
            let mut reader = reader;
            let mut all = Vec::new();
            reader.read_to_end(&mut all).await.unwrap();
            all
        });
        // The object arrives in three writes, with pauses the feeder must wait through.
        let mut file = std::fs::File::create(&path).unwrap();
        for part in [0..7, 7..500, 500..1000] {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            std::io::Write::write_all(&mut file, &object[part.clone()]).unwrap();
            arrived.send_replace(Arrival {
                bytes: part.end as u64,
                ..Arrival::default()
            });
        }
        feeding.await.unwrap().unwrap();
        let mut want = object[..10].to_vec();
        want.extend_from_slice(b"moved");
        want.extend_from_slice(&object[10..]);
        assert_eq!(reading.await.unwrap(), want);
    }

    #[tokio::test]
    async fn a_failed_download_ends_the_feed_with_an_error_and_a_gone_reader_without() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("source");
        std::fs::write(&path, [7u8; 100]).unwrap();
        let (arrived, arrival) = watch::channel(Arrival {
            bytes: 100,
            ..Arrival::default()
        });
        let whole = vec![Piece::Object { start: 0, end: 200 }];
        let streamed = Streamed::new(path.clone(), 200, whole.clone(), arrival.clone());
        let feeding = tokio::spawn(async move { streamed.feed(tokio::io::sink()).await });
        arrived.send_replace(Arrival {
            bytes: 100,
            failed: true,
            complete: false,
        });
        assert!(feeding.await.unwrap().is_err());
        assert!(Downloaded::new(arrived.subscribe()).wait().await.is_err());
        Downloaded::already().wait().await.unwrap();

        // A reader that closes its end early (ffprobe done) is not an error.
        let streamed = Streamed::new(path, 200, whole, arrival);
        let (reader, writer) = tokio::io::duplex(16);
        drop(reader);
        streamed.feed(writer).await.unwrap();
    }
}
