//! S3 through the AWS SDK and its default credential chain. `AWS_ENDPOINT_URL` points it at an
//! emulator, with path-style addressing (emulators serve one host, not one per bucket).

use std::path::Path;

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use tokio::io::AsyncReadExt;

use super::{ObjectKind, OutputSink, S3Object, S3Prefix, StorageError};
use crate::liveness::Liveness;

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its ETag (quotes included, as S3 returns it).
    pub etag: Option<String>,
}

/// What we need to know of a source object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The ETag (quotes included, as S3 returns it).
    pub etag: Option<String>,
    /// Size in bytes.
    pub size: u64,
}

/// An S3 client.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
}

fn s3_error(
    operation: &'static str,
    bucket: &str,
    key: &str,
    err: impl std::error::Error,
) -> StorageError {
    StorageError::S3 {
        operation,
        bucket: bucket.into(),
        key: key.into(),
        message: DisplayErrorContext(err).to_string(),
    }
}

impl S3Store {
    /// A client from the shared AWS configuration.
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        let mut builder = aws_sdk_s3::config::Builder::from(config);
        if std::env::var_os("AWS_ENDPOINT_URL").is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
        {
            builder = builder.force_path_style(true);
        }
        Self {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
        }
    }

    /// ETag and size of `object`.
    pub async fn head(&self, object: &S3Object) -> Result<ObjectInfo, StorageError> {
        let result = self
            .client
            .head_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .send()
            .await;
        match result {
            Ok(head) => Ok(ObjectInfo {
                etag: head.e_tag().map(str::to_string),
                size: head.content_length().unwrap_or(0).max(0) as u64,
            }),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => {
                Err(StorageError::SourceMissing {
                    bucket: object.bucket.clone(),
                    key: object.key.clone(),
                })
            }
            Err(err) => Err(s3_error("HeadObject", &object.bucket, &object.key, err)),
        }
    }

    /// The objects whose keys start with `prefix` in `bucket`: at most `limit`, in key order
    /// (one page of ListObjectsV2).
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        limit: i32,
    ) -> Result<Vec<ListedObject>, StorageError> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(limit)
            .send()
            .await
            .map_err(|e| s3_error("ListObjectsV2", bucket, prefix, e))?;
        Ok(page
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ListedObject {
                    key: o.key()?.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    etag: o.e_tag().map(str::to_string),
                })
            })
            .collect())
    }

    /// Bytes `[start, end)` of `object` (a ranged GET, `If-Match` its `etag` when given), for
    /// the few small pieces read before the download: a source's head and its index. At most
    /// `end - start` bytes are read, whatever the server sends.
    pub async fn get_range(
        &self,
        object: &S3Object,
        etag: Option<&str>,
        start: u64,
        end: u64,
    ) -> Result<Vec<u8>, StorageError> {
        let output = self
            .get(
                object,
                etag,
                Some(format!("bytes={start}-{}", end.max(start + 1) - 1)),
            )
            .await?;
        let mut bytes = Vec::new();
        output
            .body
            .into_async_read()
            .take(end.saturating_sub(start))
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| StorageError::S3 {
                operation: "GetObject",
                bucket: object.bucket.clone(),
                key: object.key.clone(),
                message: format!("ranged read interrupted: {e}"),
            })?;
        Ok(bytes)
    }

    /// Streams `object` into the file `dest` (never the whole object in memory), refusing more
    /// than `max_bytes`, and only the bytes with `etag` when given (`If-Match`: what the job
    /// recorded is what it transcodes). Tells `arrived` the bytes written so far after each
    /// write, so that a reader can follow the file as it grows. Returns what was downloaded.
    pub async fn download(
        &self,
        object: &S3Object,
        etag: Option<&str>,
        dest: &Path,
        max_bytes: u64,
        liveness: &Liveness,
        arrived: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<ObjectInfo, StorageError> {
        let output = self.get(object, etag, None).await?;
        let etag = output.e_tag().map(str::to_string);
        let declared = output.content_length().unwrap_or(0).max(0) as u64;
        if declared > max_bytes {
            return Err(StorageError::TooLarge {
                size: declared,
                max: max_bytes,
            });
        }
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(StorageError::io(dest))?;
        // One byte past the limit is enough to know it is over.
        let mut body = output.body.into_async_read().take(max_bytes + 1);
        let interrupted = |e: std::io::Error| StorageError::S3 {
            operation: "GetObject",
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            message: format!("download interrupted: {e}"),
        };
        let mut chunk = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let n = fill(&mut body, &mut chunk).await.map_err(interrupted)?;
            if n == 0 {
                break;
            }
            // A tokio write returns once its bytes are handed to a background thread; the
            // flush waits until they are in the file, so a reader told `size` finds them there.
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk[..n])
                .await
                .map_err(StorageError::io(dest))?;
            tokio::io::AsyncWriteExt::flush(&mut file)
                .await
                .map_err(StorageError::io(dest))?;
            size += n as u64;
            if size > max_bytes {
                return Err(StorageError::TooLarge {
                    size,
                    max: max_bytes,
                });
            }
            arrived(size);
            // Bytes arriving are progress: a long download keeps its message.
            liveness.beat();
        }
        Ok(ObjectInfo { etag, size })
    }

    /// GetObject of `object`, whole or `range`, only while it holds `etag` when given.
    async fn get(
        &self,
        object: &S3Object,
        etag: Option<&str>,
        range: Option<String>,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, StorageError> {
        let result = self
            .client
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_if_match(etag.map(str::to_string))
            .set_range(range)
            .send()
            .await;
        match result {
            Ok(output) => Ok(output),
            Err(err) if precondition_failed(&err) => Err(StorageError::SourceChanged {
                bucket: object.bucket.clone(),
                key: object.key.clone(),
                etag: etag.unwrap_or_default().to_string(),
            }),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                Err(StorageError::SourceMissing {
                    bucket: object.bucket.clone(),
                    key: object.key.clone(),
                })
            }
            Err(err) => Err(s3_error("GetObject", &object.bucket, &object.key, err)),
        }
    }

    /// Deletes `object` (the raw upload, once its job is done and `DELETE_SOURCE` asks for it)
    /// only while it still holds the bytes with `etag`: a re-upload that landed meanwhile is a
    /// new job's source and stays. Returns false when it was left for that reason.
    pub async fn delete_if_unchanged(
        &self,
        object: &S3Object,
        etag: &str,
    ) -> Result<bool, StorageError> {
        delete_if_match(&self.client, &object.bucket, &object.key, etag).await
    }

    /// A sink publishing under `prefix`.
    pub fn sink(&self, prefix: S3Prefix) -> S3Sink {
        S3Sink {
            client: self.client.clone(),
            prefix,
        }
    }
}

/// True when S3 refused a conditional request because its condition did not hold (412), or
/// because another conditional write to the same key was in progress (409).
/// Reads into `buffer` until it is full or the body ends; the bytes read. Whole chunks make
/// fewer writes, and fewer flushes, than the body's own small pieces.
async fn fill(
    body: &mut (impl tokio::io::AsyncRead + Unpin),
    buffer: &mut [u8],
) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        let n = body.read(&mut buffer[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

fn precondition_failed<E, R>(err: &aws_sdk_s3::error::SdkError<E, R>) -> bool
where
    R: std::fmt::Debug,
    aws_sdk_s3::error::SdkError<E, R>: aws_sdk_s3::error::ProvideErrorMetadata,
{
    use aws_sdk_s3::error::ProvideErrorMetadata;
    matches!(
        err.code(),
        Some("PreconditionFailed" | "ConditionalRequestConflict")
    )
}

/// Deletes `bucket/key` only while it has `etag`; false when it has other bytes now. Absent
/// counts as deleted.
async fn delete_if_match(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    etag: &str,
) -> Result<bool, StorageError> {
    let result = client
        .delete_object()
        .bucket(bucket)
        .key(key)
        .if_match(etag)
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(err) if precondition_failed(&err) => Ok(false),
        Err(err)
            if err
                .raw_response()
                .is_some_and(|r| r.status().as_u16() == 404) =>
        {
            Ok(true)
        }
        Err(err) => Err(s3_error("DeleteObject", bucket, key, err)),
    }
}

/// A write that happens only if the object is as expected: how one owner of a prefix is
/// chosen among processes that share nothing but S3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition<'a> {
    /// The object must not exist (`If-None-Match: *`).
    Absent,
    /// The object must still have this ETag (`If-Match`).
    Unchanged(&'a str),
}

/// Publishes under one S3 prefix.
#[derive(Debug, Clone)]
pub struct S3Sink {
    client: aws_sdk_s3::Client,
    prefix: S3Prefix,
}

impl S3Sink {
    /// Where this sink writes.
    pub fn prefix(&self) -> &S3Prefix {
        &self.prefix
    }

    /// A sink for the folder `name` under this one (a version folder).
    pub fn folder(&self, name: &str) -> Self {
        Self {
            client: self.client.clone(),
            prefix: self.prefix.folder(name),
        }
    }

    /// Writes `bytes` as `name` only if `condition` holds. Returns the new ETag, or `None`
    /// when the condition did not hold.
    pub async fn put_if(
        &self,
        name: &str,
        bytes: Vec<u8>,
        condition: Condition<'_>,
    ) -> Result<Option<String>, StorageError> {
        let key = self.prefix.key(name);
        let request = self
            .client
            .put_object()
            .bucket(&self.prefix.bucket)
            .key(&key)
            .body(ByteStream::from(bytes))
            .content_type(ObjectKind::Json.content_type())
            .cache_control(ObjectKind::Json.cache_control());
        let request = match condition {
            Condition::Absent => request.if_none_match("*"),
            Condition::Unchanged(etag) => request.if_match(etag),
        };
        match request.send().await {
            Ok(output) => Ok(Some(output.e_tag().unwrap_or_default().to_string())),
            Err(err) if precondition_failed(&err) => Ok(None),
            // If-Match on a key that is gone: the condition does not hold either.
            Err(err)
                if err
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 404) =>
            {
                Ok(None)
            }
            Err(err) => Err(s3_error("PutObject", &self.prefix.bucket, &key, err)),
        }
    }

    /// Deletes `name` only while it still has `etag`: false when someone rewrote it.
    pub async fn delete_if_unchanged(&self, name: &str, etag: &str) -> Result<bool, StorageError> {
        delete_if_match(
            &self.client,
            &self.prefix.bucket,
            &self.prefix.key(name),
            etag,
        )
        .await
    }

    /// Reads `name` with its ETag, or `None` when it does not exist.
    pub async fn get_with_etag(
        &self,
        name: &str,
    ) -> Result<Option<(Vec<u8>, String)>, StorageError> {
        let key = self.prefix.key(name);
        let result = self
            .client
            .get_object()
            .bucket(&self.prefix.bucket)
            .key(&key)
            .send()
            .await;
        match result {
            Ok(output) => {
                let etag = output.e_tag().unwrap_or_default().to_string();
                let bytes = output.body.collect().await.map_err(|e| StorageError::S3 {
                    operation: "GetObject",
                    bucket: self.prefix.bucket.clone(),
                    key: key.clone(),
                    message: e.to_string(),
                })?;
                Ok(Some((bytes.to_vec(), etag)))
            }
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(err) => Err(s3_error("GetObject", &self.prefix.bucket, &key, err)),
        }
    }

    /// The folders directly under this prefix (names without the trailing `/`).
    pub async fn list_folders(&self) -> Result<Vec<String>, StorageError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.prefix.bucket)
            .prefix(&self.prefix.prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        let mut folders = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                s3_error("ListObjectsV2", &self.prefix.bucket, &self.prefix.prefix, e)
            })?;
            for common in page.common_prefixes() {
                let name = common
                    .prefix()
                    .and_then(|p| p.strip_prefix(self.prefix.prefix.as_str()))
                    .map(|p| p.trim_end_matches('/'));
                if let Some(name) = name.filter(|n| !n.is_empty()) {
                    folders.push(name.to_string());
                }
            }
        }
        Ok(folders)
    }

    /// Deletes every object in the folder `name` under this prefix. Returns how many.
    pub async fn delete_folder(&self, name: &str) -> Result<usize, StorageError> {
        let folder = self.prefix.folder(name);
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&folder.bucket)
            .prefix(&folder.prefix)
            .into_paginator()
            .send();
        let mut deleted = 0;
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| s3_error("ListObjectsV2", &folder.bucket, &folder.prefix, e))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                self.client
                    .delete_object()
                    .bucket(&folder.bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| s3_error("DeleteObject", &folder.bucket, key, e))?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    async fn put(
        &self,
        name: &str,
        body: ByteStream,
        kind: ObjectKind,
    ) -> Result<(), StorageError> {
        let key = self.prefix.key(name);
        self.client
            .put_object()
            .bucket(&self.prefix.bucket)
            .key(&key)
            .body(body)
            .content_type(kind.content_type())
            .cache_control(kind.cache_control())
            .send()
            .await
            .map_err(|e| s3_error("PutObject", &self.prefix.bucket, &key, e))?;
        Ok(())
    }
}

impl OutputSink for S3Sink {
    async fn put_file(
        &self,
        name: &str,
        path: &Path,
        kind: ObjectKind,
    ) -> Result<(), StorageError> {
        // Streams from disk; the SDK retries a failed attempt by reopening the file.
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| StorageError::Io {
                path: path.display().to_string(),
                source: std::io::Error::other(e),
            })?;
        self.put(name, body, kind).await
    }

    async fn put_bytes(
        &self,
        name: &str,
        bytes: Vec<u8>,
        kind: ObjectKind,
    ) -> Result<(), StorageError> {
        self.put(name, ByteStream::from(bytes), kind).await
    }

    async fn get_bytes(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.get_with_etag(name).await?.map(|(bytes, _)| bytes))
    }

    async fn delete(&self, name: &str) -> Result<(), StorageError> {
        let key = self.prefix.key(name);
        self.client
            .delete_object()
            .bucket(&self.prefix.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| s3_error("DeleteObject", &self.prefix.bucket, &key, e))?;
        Ok(())
    }

    fn locate(&self, name: &str) -> String {
        self.prefix.url(name)
    }
}
