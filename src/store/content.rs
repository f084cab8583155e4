//! The content-addressed store of the media and script libraries (the plan's 介質庫) and
//! of drivers' full logs: a file is kept once, under its SHA-256, and the events hold only
//! the hash. Writing goes to a temporary file first and is renamed into place, so a file
//! under its name is always whole; the same content written twice is one file. An upload
//! ([`ContentStore::put_stream`]) is written to `<root>/incoming` as it arrives, hashed on
//! the way, and never held in memory whole.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// A stored file's name: the lowercase hex SHA-256 of its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Hex(String);

impl Sha256Hex {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Sha256Hex(hex::encode(Sha256::digest(bytes)))
    }

    /// Checks that `text` is 64 lowercase hex digits.
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Sha256Hex(text.to_owned()))
        } else {
            Err("must be 64 lowercase hexadecimal digits (a SHA-256)".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The largest upload [`ContentStore::put_stream`] takes unless told otherwise: 1 GiB.
pub const DEFAULT_UPLOAD_LIMIT: u64 = 1 << 30;

/// Why an upload was not kept. Nothing of it is left behind.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the upload is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the upload was interrupted: {0}")]
    Body(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A directory of files named by their hash, `<root>/<first two digits>/<hash>`.
#[derive(Clone, Debug)]
pub struct ContentStore {
    root: PathBuf,
    /// The largest upload, in bytes.
    upload_limit: u64,
    /// Keeps a temporary root alive as long as the store (tests, `App::start`).
    _temporary: Option<Arc<tempfile::TempDir>>,
}

impl ContentStore {
    /// The store under `root` (created when missing).
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(ContentStore {
            root,
            upload_limit: DEFAULT_UPLOAD_LIMIT,
            _temporary: None,
        })
    }

    /// A store in a fresh temporary directory, removed when the last clone is dropped.
    ///
    /// # Errors
    /// When no temporary directory can be made.
    pub fn temporary() -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        Ok(ContentStore {
            root: dir.path().to_path_buf(),
            upload_limit: DEFAULT_UPLOAD_LIMIT,
            _temporary: Some(Arc::new(dir)),
        })
    }

    /// The same store, taking uploads of at most `bytes`.
    #[must_use]
    pub fn with_upload_limit(mut self, bytes: u64) -> Self {
        self.upload_limit = bytes;
        self
    }

    pub fn upload_limit(&self) -> u64 {
        self.upload_limit
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the file of `hash` is (or would be).
    pub fn path(&self, hash: &Sha256Hex) -> PathBuf {
        self.root.join(&hash.0[..2]).join(&hash.0)
    }

    pub fn contains(&self, hash: &Sha256Hex) -> bool {
        self.path(hash).is_file()
    }

    /// Keeps `bytes` and returns their hash; content kept already is not written again.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub async fn put(&self, bytes: Vec<u8>) -> std::io::Result<Sha256Hex> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.put_blocking(&bytes))
            .await
            .map_err(std::io::Error::other)?
    }

    fn put_blocking(&self, bytes: &[u8]) -> std::io::Result<Sha256Hex> {
        use std::io::Write;
        let hash = Sha256Hex::of(bytes);
        let path = self.path(&hash);
        if path.is_file() {
            return Ok(hash);
        }
        let dir = path.parent().expect("a hash path has a parent");
        std::fs::create_dir_all(dir)?;
        let mut file = tempfile::NamedTempFile::new_in(dir)?;
        file.write_all(bytes)?;
        file.as_file().sync_all()?;
        file.persist(&path).map_err(|e| e.error)?;
        Ok(hash)
    }

    /// The size in bytes of the file kept under `hash`, `None` when there is none.
    ///
    /// # Errors
    /// When the file's metadata cannot be read.
    pub async fn size(&self, hash: &Sha256Hex) -> std::io::Result<Option<u64>> {
        match tokio::fs::metadata(self.path(hash)).await {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Keeps the bytes `chunks` yields, at most [`ContentStore::upload_limit`]: written to a
    /// temporary file as they arrive and hashed on the way, then renamed into place. Their
    /// hash and size.
    ///
    /// # Errors
    /// When the stream fails or runs past the limit, or a file cannot be written; nothing
    /// is kept then.
    pub async fn put_stream<S, B, E>(&self, chunks: S) -> Result<(Sha256Hex, u64), UploadError>
    where
        S: futures::Stream<Item = Result<B, E>>,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        let incoming = self.root.join("incoming");
        tokio::fs::create_dir_all(&incoming).await?;
        let temporary =
            tokio::task::spawn_blocking(move || tempfile::NamedTempFile::new_in(incoming))
                .await
                .map_err(std::io::Error::other)??;
        // The path deletes the file when dropped: on any error below, nothing is left.
        let (file, temporary) = temporary.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut chunks = std::pin::pin!(chunks);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| UploadError::Body(e.to_string()))?;
            let bytes = chunk.as_ref();
            size += bytes.len() as u64;
            if size > self.upload_limit {
                return Err(UploadError::TooLarge {
                    limit: self.upload_limit,
                });
            }
            hasher.update(bytes);
            file.write_all(bytes).await?;
        }
        file.sync_all().await?;
        drop(file);
        let hash = Sha256Hex(hex::encode(hasher.finalize()));
        let target = self.path(&hash);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if target.is_file() {
                return Ok(());
            }
            std::fs::create_dir_all(target.parent().expect("a hash path has a parent"))?;
            temporary.persist(&target).map_err(|e| e.error)
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok((hash, size))
    }

    /// The bytes kept under `hash`, `None` when there are none.
    ///
    /// # Errors
    /// When the file exists but cannot be read.
    pub async fn get(&self, hash: &Sha256Hex) -> std::io::Result<Option<Vec<u8>>> {
        match tokio::fs::read(self.path(hash)).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_same_content_is_kept_once_under_its_hash() {
        let store = ContentStore::temporary().unwrap();
        let a = store.put(b"#!/bin/sh\necho ok\n".to_vec()).await.unwrap();
        let b = store.put(b"#!/bin/sh\necho ok\n".to_vec()).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(a, Sha256Hex::of(b"#!/bin/sh\necho ok\n"));
        assert_eq!(
            store.get(&a).await.unwrap().as_deref(),
            Some(&b"#!/bin/sh\necho ok\n"[..])
        );
        let missing = Sha256Hex::of(b"other");
        assert_eq!(store.get(&missing).await.unwrap(), None);
        assert!(Sha256Hex::parse("ABC").is_err());
        assert!(Sha256Hex::parse(a.as_str()).is_ok());
    }

    #[tokio::test]
    async fn a_stream_is_kept_under_its_hash_within_the_limit() {
        let store = ContentStore::temporary().unwrap().with_upload_limit(10);
        let chunks = |parts: Vec<&'static [u8]>| {
            futures::stream::iter(parts.into_iter().map(Ok::<_, std::io::Error>))
        };
        let (hash, size) = store
            .put_stream(chunks(vec![b"echo ", b"ok\n"]))
            .await
            .unwrap();
        assert_eq!((hash.clone(), size), (Sha256Hex::of(b"echo ok\n"), 8));
        assert_eq!(store.size(&hash).await.unwrap(), Some(8));
        assert_eq!(
            store.get(&hash).await.unwrap().as_deref(),
            Some(&b"echo ok\n"[..])
        );
        // Past the limit: refused, and nothing is left, not even in `incoming`.
        let refused = store.put_stream(chunks(vec![b"0123456", b"789a"])).await;
        assert!(matches!(refused, Err(UploadError::TooLarge { limit: 10 })));
        assert_eq!(
            store.size(&Sha256Hex::of(b"0123456789a")).await.unwrap(),
            None
        );
        let left = std::fs::read_dir(store.root().join("incoming"))
            .unwrap()
            .count();
        assert_eq!(left, 0);
        // The same content again is the same file.
        let again = store.put_stream(chunks(vec![b"echo ok\n"])).await.unwrap();
        assert_eq!(again, (hash, 8));
    }
}
