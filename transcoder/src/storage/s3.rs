//! S3 through the AWS SDK and its default credential chain. `AWS_ENDPOINT_URL` points it at an
//! emulator, with path-style addressing (emulators serve one host, not one per bucket).

use std::path::Path;

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use tokio::io::AsyncReadExt;

use super::{ObjectKind, OutputSink, S3Object, S3Prefix, StorageError};

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

    /// Streams `object` into the file `dest` (never the whole object in memory), refusing more
    /// than `max_bytes`. Returns what was downloaded.
    pub async fn download(
        &self,
        object: &S3Object,
        dest: &Path,
        max_bytes: u64,
    ) -> Result<ObjectInfo, StorageError> {
        let result = self
            .client
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Err(StorageError::SourceMissing {
                    bucket: object.bucket.clone(),
                    key: object.key.clone(),
                })
            }
            Err(err) => return Err(s3_error("GetObject", &object.bucket, &object.key, err)),
        };
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
        let size = tokio::io::copy(&mut body, &mut file)
            .await
            .map_err(|e| StorageError::S3 {
                operation: "GetObject",
                bucket: object.bucket.clone(),
                key: object.key.clone(),
                message: format!("download interrupted: {e}"),
            })?;
        if size > max_bytes {
            return Err(StorageError::TooLarge {
                size,
                max: max_bytes,
            });
        }
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(StorageError::io(dest))?;
        Ok(ObjectInfo { etag, size })
    }

    /// Deletes `object` (the raw upload, once its job is done and `DELETE_SOURCE` asks for it).
    pub async fn delete(&self, object: &S3Object) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .send()
            .await
            .map_err(|err| s3_error("DeleteObject", &object.bucket, &object.key, err))?;
        Ok(())
    }

    /// A sink publishing under `prefix`.
    pub fn sink(&self, prefix: S3Prefix) -> S3Sink {
        S3Sink {
            client: self.client.clone(),
            prefix,
        }
    }
}

/// Publishes under one S3 prefix.
#[derive(Debug, Clone)]
pub struct S3Sink {
    client: aws_sdk_s3::Client,
    prefix: S3Prefix,
}

impl S3Sink {
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
                let bytes = output.body.collect().await.map_err(|e| StorageError::S3 {
                    operation: "GetObject",
                    bucket: self.prefix.bucket.clone(),
                    key: key.clone(),
                    message: e.to_string(),
                })?;
                Ok(Some(bytes.to_vec()))
            }
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(err) => Err(s3_error("GetObject", &self.prefix.bucket, &key, err)),
        }
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
