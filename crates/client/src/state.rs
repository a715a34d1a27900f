//! Open sessions on disk: terms and session key, so a crashed or killed client can still
//! close what it opened. Written (owner-only, fsynced, atomically renamed) before the session
//! carries traffic; removed once the session is settled.

use std::io::Write;
use std::path::{Path, PathBuf};

use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolValue;
use serde::{Deserialize, Serialize};
use wirepact_proto::SessionTerms;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a session file ({reason})")]
    Corrupt { path: PathBuf, reason: String },
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    session_id: B256,
    /// ABI-encoded terms, hex.
    terms: alloy::primitives::Bytes,
    /// The session key, hex. Never logged.
    session_key: B256,
}

/// A session this client opened and has not settled.
#[derive(Clone)]
pub struct SavedSession {
    pub terms: SessionTerms,
    pub session_key: PrivateKeySigner,
}

impl std::fmt::Debug for SavedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedSession").field("id", &self.terms.session_id().0).finish_non_exhaustive()
    }
}

/// The session files under `dir`.
#[derive(Debug, Clone)]
pub struct SessionStore {
    dir: PathBuf,
}

impl SessionStore {
    #[must_use]
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.join("sessions") }
    }

    fn path(&self, id: &B256) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Checks that session files can be written here (durably), before anything goes on chain:
    /// a session whose file cannot be kept would strand its deposit after a crash.
    ///
    /// # Errors
    /// The I/O error, with the path.
    pub fn check_writable(&self) -> Result<(), StateError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let probe = self.dir.join(".write-check.tmp");
        let mut f = std::fs::File::create(&probe).map_err(io(&probe))?;
        f.write_all(b"wirepact").map_err(io(&probe))?;
        f.sync_all().map_err(io(&probe))?;
        std::fs::remove_file(&probe).map_err(io(&probe))?;
        Ok(())
    }

    /// Writes `s` durably before it is used.
    ///
    /// # Errors
    /// Any I/O error (disk full included): the caller must not use the session then.
    pub fn save(&self, s: &SavedSession) -> Result<(), StateError> {
        let id = s.terms.session_id().0;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let rec = OnDisk { session_id: id, terms: s.terms.abi_encode().into(), session_key: s.session_key.to_bytes() };
        let text = serde_json::to_vec_pretty(&rec)
            .map_err(|e| StateError::Corrupt { path: self.path(&id), reason: e.to_string() })?;
        let tmp = self.dir.join(format!(".{id}.tmp"));
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let mut f = o.open(&tmp).map_err(io(&tmp))?;
        f.write_all(&text).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        let dest = self.path(&id);
        std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Forgets a settled session.
    ///
    /// # Errors
    /// I/O errors other than "already gone".
    pub fn remove(&self, id: &B256) -> Result<(), StateError> {
        let p = self.path(id);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Io { path: p, source }),
        }
    }

    /// Every saved session. A file that does not parse is an error, not skipped: it may hold a
    /// deposit's only key.
    ///
    /// # Errors
    /// Unreadable or corrupt files.
    pub fn load_all(&self) -> Result<Vec<SavedSession>, StateError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StateError::Io { path: self.dir.clone(), source }),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|source| StateError::Io { path: self.dir.clone(), source })?;
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|source| StateError::Io { path: path.clone(), source })?;
            let corrupt = |reason: String| StateError::Corrupt { path: path.clone(), reason };
            let rec: OnDisk = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
            let terms = SessionTerms::abi_decode(&rec.terms).map_err(|e| corrupt(e.to_string()))?;
            if terms.session_id().0 != rec.session_id {
                return Err(corrupt("terms do not hash to the session id".into()));
            }
            let session_key = PrivateKeySigner::from_bytes(&rec.session_key).map_err(|e| corrupt(e.to_string()))?;
            if session_key.address() != terms.sessionKey {
                return Err(corrupt("the key is not the session's key".into()));
            }
            out.push(SavedSession { terms, session_key });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{Address, Uint};

    fn saved(n: u32) -> SavedSession {
        let key = PrivateKeySigner::random();
        let terms = SessionTerms {
            client: Address::repeat_byte(7),
            sessionKey: key.address(),
            providerId: 1,
            nonce: n,
            sessionMbps: 20,
            violationsAtOpen: 0,
            openedAt: Uint::from(1_800_000_000u64),
            deposit: Uint::from(10u64),
            pricePerGiB: Uint::from(3u64),
        };
        SavedSession { terms, session_key: key }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wirepact-client-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn saved_sessions_come_back_with_their_keys_until_removed() {
        let dir = tmp("roundtrip");
        let store = SessionStore::new(&dir);
        let (a, b) = (saved(1), saved(2));
        store.save(&a).expect("save");
        store.save(&b).expect("save");
        let mut back = store.load_all().expect("load");
        back.sort_by_key(|s| s.terms.nonce);
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].terms, a.terms);
        assert_eq!(back[0].session_key.address(), a.session_key.address());
        store.remove(&a.terms.session_id().0).expect("remove");
        store.remove(&a.terms.session_id().0).expect("removing twice is fine");
        assert_eq!(store.load_all().expect("load").len(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(store.path(&b.terms.session_id().0)).expect("meta");
            assert_eq!(meta.permissions().mode() & 0o077, 0, "session file readable by others");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_tampered_file_is_an_error_not_a_silent_skip() {
        let dir = tmp("tamper");
        let store = SessionStore::new(&dir);
        let a = saved(1);
        store.save(&a).expect("save");
        let p = store.path(&a.terms.session_id().0);
        let text = std::fs::read_to_string(&p).expect("read");
        let other = format!("{}", PrivateKeySigner::random().to_bytes());
        let key = format!("{}", a.session_key.to_bytes());
        std::fs::write(&p, text.replace(&key, &other)).expect("write");
        let err = store.load_all().expect_err("tampered");
        assert!(err.to_string().contains("not the session's key"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
