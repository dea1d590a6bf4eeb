//! The data directory before anything is read from it: that it is a writable directory,
//! that no other running `jet` holds it (an exclusive `flock` on `.lock`, as Kafka locks
//! each log dir), and that it belongs to this node and cluster (`meta.properties`,
//! Kafka's format: `version=1`, `node.id`, `cluster.id`). Each failure names the path
//! and what is wrong.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = ".lock";
pub const META_PROPERTIES: &str = "meta.properties";

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("data directory {path} is not a directory (it is a file); give a directory with --data-dir or log.dirs")]
    NotADirectory { path: PathBuf },
    #[error("cannot create data directory {path}: {source}")]
    Create { path: PathBuf, source: crate::log::LogError },
    #[error("data directory {path} is not writable: {source}")]
    Unwritable { path: PathBuf, source: std::io::Error },
    #[error(
        "data directory {path} is in use by another running jet (it holds {lock}); stop it or give another directory"
    )]
    Locked { path: PathBuf, lock: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    BadMeta { path: PathBuf, reason: String },
    #[error(
        "data directory {dir} belongs to node.id {stored} (its {META_PROPERTIES}), but this broker is node.id {configured}; refusing to start: give the node.id it was written with, or another directory"
    )]
    NodeIdMismatch { dir: PathBuf, stored: i32, configured: i32 },
    #[error(
        "data directory {dir} belongs to cluster {stored} (its {META_PROPERTIES}), but --cluster-id is {configured}; refusing to start"
    )]
    ClusterIdMismatch { dir: PathBuf, stored: String, configured: String },
}

/// The exclusive lock on a data directory, held while the broker runs.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Makes sure `dir` is a writable directory (creating it durably) and locks it.
pub fn prepare(dir: &Path) -> Result<DirLock, DataDirError> {
    if dir.exists() && !dir.is_dir() {
        return Err(DataDirError::NotADirectory { path: dir.to_path_buf() });
    }
    crate::log::create_dir_durably(dir).map_err(|source| DataDirError::Create { path: dir.to_path_buf(), source })?;
    let lock = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|source| DataDirError::Unwritable { path: dir.to_path_buf(), source })?;
    // SAFETY: flock(2) on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(DataDirError::Locked { path: dir.to_path_buf(), lock });
        }
        return Err(DataDirError::Io { path: lock, source: e });
    }
    Ok(DirLock { _file: file })
}

/// What `meta.properties` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    pub node_id: i32,
    pub cluster_id: String,
}

/// Reads `meta.properties` if the directory has one.
pub fn read_meta(dir: &Path) -> Result<Option<MetaProperties>, DataDirError> {
    let path = dir.join(META_PROPERTIES);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(DataDirError::Io { path, source }),
    };
    let bad = |reason: String| DataDirError::BadMeta { path: path.clone(), reason };
    let props = crate::config::properties::parse(&path.display().to_string(), &text).map_err(|e| bad(e.to_string()))?;
    let get = |key: &str| props.iter().find(|p| p.key == key).map(|p| p.value.clone());
    if get("version").as_deref() != Some("1") {
        return Err(bad(format!("unsupported version {:?} (Jet writes version=1)", get("version"))));
    }
    let node_id = get("node.id").ok_or_else(|| bad("no node.id".into()))?;
    let node_id = node_id.parse::<i32>().map_err(|e| bad(format!("node.id `{node_id}`: {e}")))?;
    let cluster_id = get("cluster.id").ok_or_else(|| bad("no cluster.id".into()))?;
    Ok(Some(MetaProperties { node_id, cluster_id }))
}

/// Checks a directory's `meta.properties` against this broker's node id and configured
/// cluster id; `Ok(None)` when it has none yet.
pub fn check_meta(
    dir: &Path,
    node_id: i32,
    configured_cluster: Option<&str>,
) -> Result<Option<MetaProperties>, DataDirError> {
    let Some(meta) = read_meta(dir)? else { return Ok(None) };
    if meta.node_id != node_id {
        return Err(DataDirError::NodeIdMismatch { dir: dir.to_path_buf(), stored: meta.node_id, configured: node_id });
    }
    if let Some(configured) = configured_cluster.filter(|c| *c != meta.cluster_id) {
        return Err(DataDirError::ClusterIdMismatch {
            dir: dir.to_path_buf(),
            stored: meta.cluster_id,
            configured: configured.to_string(),
        });
    }
    Ok(Some(meta))
}

/// Writes `meta.properties` durably (temporary file, fsync, rename, fsync of the directory).
pub fn write_meta(dir: &Path, meta: &MetaProperties) -> Result<(), DataDirError> {
    let path = dir.join(META_PROPERTIES);
    let tmp = dir.join("meta.properties.tmp");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DataDirError::Io { path, source }
    };
    let text = format!(
        "#\n#Written by jet {}\ncluster.id={}\nnode.id={}\nversion=1\n",
        env!("CARGO_PKG_VERSION"),
        meta.cluster_id,
        meta.node_id
    );
    let mut file = File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// A fresh cluster id as Kafka makes them: a random UUID in URL-safe base64 without
/// padding (22 characters), never starting with `-` (Kafka's `Uuid.randomUuid` rule: such
/// an id reads as an option on a command line, `--cluster-id -lbh…`).
pub fn new_cluster_id() -> String {
    loop {
        let id = base64url(uuid::Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_are_22_char_base64url() {
        assert_eq!(base64url(&[0xfb, 0xff, 0xbf]), "-_-_");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        for _ in 0..2_000 {
            let id = new_cluster_id();
            assert_eq!(id.len(), 22, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{id}");
            assert!(!id.starts_with('-'), "{id} would read as an option");
        }
    }

    #[test]
    fn a_file_a_locked_dir_and_an_unwritable_dir_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("data");
        std::fs::write(&file, b"x").unwrap();
        let e = prepare(&file).unwrap_err().to_string();
        assert!(e.contains("is not a directory") && e.contains(&file.display().to_string()), "{e}");

        let dir = tmp.path().join("dir");
        let held = prepare(&dir).unwrap();
        let e = prepare(&dir).unwrap_err().to_string();
        assert!(e.contains("in use by another running jet") && e.contains(".lock"), "{e}");
        drop(held);
        prepare(&dir).unwrap();

        // Not writable even by root.
        let e = prepare(Path::new("/proc/self/fdinfo")).unwrap_err().to_string();
        assert!(e.contains("/proc/self/fdinfo is not writable"), "{e}");
    }

    #[test]
    fn meta_properties_round_trip_and_mismatches_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(check_meta(tmp.path(), 1, None).unwrap(), None);
        let meta = MetaProperties { node_id: 1, cluster_id: "MkU3OEVBNTcwNTJENDM2Qk".into() };
        write_meta(tmp.path(), &meta).unwrap();
        assert_eq!(read_meta(tmp.path()).unwrap(), Some(meta.clone()));
        assert_eq!(check_meta(tmp.path(), 1, Some("MkU3OEVBNTcwNTJENDM2Qk")).unwrap(), Some(meta));
        let e = check_meta(tmp.path(), 2, None).unwrap_err().to_string();
        assert!(e.contains("belongs to node.id 1") && e.contains("node.id 2"), "{e}");
        let e = check_meta(tmp.path(), 1, Some("other")).unwrap_err().to_string();
        assert!(e.contains("belongs to cluster MkU3OEVBNTcwNTJENDM2Qk"), "{e}");
    }
}
