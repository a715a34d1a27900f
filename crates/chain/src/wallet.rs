//! Keystore v3 wallets (the format `cast wallet new` and geth write).

use std::path::{Path, PathBuf};

use alloy::signers::local::PrivateKeySigner;

/// Where the keystore password comes from.
#[derive(Debug, Clone)]
pub enum PasswordSource {
    /// The value of this environment variable.
    Env(String),
    /// The first line of this file.
    File(PathBuf),
    /// Ask on the terminal (fails without one).
    Prompt,
}

#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error("password environment variable {0} is not set")]
    MissingEnv(String),
    #[error("cannot read password file {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot prompt for a password (no terminal?): {0}; use --password-file or an env variable")]
    Prompt(#[source] std::io::Error),
    #[error("cannot open keystore {path}: wrong password or not a keystore v3 file ({reason})")]
    Keystore { path: PathBuf, reason: String },
    #[error("cannot write keystore into {path}: {reason}")]
    Create { path: PathBuf, reason: String },
}

impl PasswordSource {
    /// Reads the password. The string is not logged anywhere.
    pub fn read(&self) -> Result<String, WalletError> {
        self.read_with_prompt("keystore password: ")
    }

    /// As [`Self::read`]; a prompt names the keystore it unlocks.
    pub fn read_for(&self, keystore: &Path) -> Result<String, WalletError> {
        self.read_with_prompt(&format!("password for keystore {}: ", keystore.display()))
    }

    fn read_with_prompt(&self, prompt: &str) -> Result<String, WalletError> {
        match self {
            PasswordSource::Env(name) => std::env::var(name).map_err(|_| WalletError::MissingEnv(name.clone())),
            PasswordSource::File(path) => std::fs::read_to_string(path)
                .map(|s| s.lines().next().unwrap_or_default().to_owned())
                .map_err(|source| WalletError::PasswordFile { path: path.clone(), source }),
            PasswordSource::Prompt => rpassword::prompt_password(prompt).map_err(WalletError::Prompt),
        }
    }
}

/// Decrypts a keystore v3 file.
pub fn load_keystore(path: &Path, password: &PasswordSource) -> Result<PrivateKeySigner, WalletError> {
    let pw = password.read_for(path)?;
    PrivateKeySigner::decrypt_keystore(path, pw)
        .map_err(|e| WalletError::Keystore { path: path.to_owned(), reason: e.to_string() })
}

/// Writes `key` as a keystore v3 file named `name` in `dir`, encrypted with `password`.
pub fn write_keystore(dir: &Path, name: &str, key: &PrivateKeySigner, password: &str) -> Result<PathBuf, WalletError> {
    std::fs::create_dir_all(dir).map_err(|e| WalletError::Create { path: dir.to_owned(), reason: e.to_string() })?;
    let mut rng = rand08::thread_rng();
    PrivateKeySigner::encrypt_keystore(dir, &mut rng, key.to_bytes(), password, Some(name))
        .map_err(|e| WalletError::Create { path: dir.to_owned(), reason: e.to_string() })?;
    Ok(dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystore_round_trips_and_wrong_password_is_refused() {
        let dir = std::env::temp_dir().join(format!("wirepact-ks-{}", std::process::id()));
        let key = PrivateKeySigner::random();
        let path = write_keystore(&dir, "k.json", &key, "hunter2").expect("write");
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, "hunter2\n").expect("pw file");
        let back = load_keystore(&path, &PasswordSource::File(pwfile)).expect("load");
        assert_eq!(back.address(), key.address());
        let bad = dir.join("bad");
        std::fs::write(&bad, "nope").expect("pw file");
        assert!(matches!(load_keystore(&path, &PasswordSource::File(bad)), Err(WalletError::Keystore { .. })));
        assert!(matches!(
            load_keystore(&path, &PasswordSource::Env("WIREPACT_TEST_NO_SUCH_VAR".into())),
            Err(WalletError::MissingEnv(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
