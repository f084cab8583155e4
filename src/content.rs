//! The content-addressed store of the media and script libraries (the plan's 介質庫) and
//! of drivers' full logs: a file is kept once, under its SHA-256, and the events hold only
//! the hash. Writing goes to a temporary file first and is renamed into place, so a file
//! under its name is always whole; the same content written twice is one file.

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

/// A directory of files named by their hash, `<root>/<first two digits>/<hash>`.
#[derive(Clone, Debug)]
pub struct ContentStore {
    root: PathBuf,
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
            _temporary: Some(Arc::new(dir)),
        })
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
}
