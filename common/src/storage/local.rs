//! A local folder as an output sink, for `transcoder local`: publishing is a rename.

use std::path::{Path, PathBuf};

use super::{ObjectKind, OutputSink, StorageError};

/// Outputs under `root`.
#[derive(Debug, Clone)]
pub struct LocalFolder {
    root: PathBuf,
}

impl LocalFolder {
    /// A sink writing under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The path of `name`, with its folder created.
    async fn writable_path(&self, name: &str) -> Result<PathBuf, StorageError> {
        let target = self.path(name);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(StorageError::io(parent))?;
        }
        Ok(target)
    }
}

impl OutputSink for LocalFolder {
    async fn put_file(
        &self,
        name: &str,
        path: &Path,
        _kind: ObjectKind,
    ) -> Result<(), StorageError> {
        let target = self.writable_path(name).await?;
        // The work folder lives inside the output folder, so this is a rename on one filesystem.
        tokio::fs::rename(path, &target)
            .await
            .map_err(StorageError::io(&target))
    }

    async fn put_bytes(
        &self,
        name: &str,
        bytes: Vec<u8>,
        _kind: ObjectKind,
    ) -> Result<(), StorageError> {
        let target = self.writable_path(name).await?;
        let mut temp = target.clone().into_os_string();
        temp.push(".tmp");
        let temp = PathBuf::from(temp);
        tokio::fs::write(&temp, bytes)
            .await
            .map_err(StorageError::io(&temp))?;
        tokio::fs::rename(&temp, &target)
            .await
            .map_err(StorageError::io(&target))
    }

    async fn get_bytes(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let path = self.path(name);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(&path)(e)),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), StorageError> {
        let path = self.path(name);
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StorageError::io(&path)(e)),
            _ => Ok(()),
        }
    }

    fn locate(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}
