//! The environment as pgship sees it: the process environment over `.env.local` over `.env`.
//!
//! The files are read without touching the process environment (no `set_var`), so child
//! processes get only what pgship passes them explicitly.

use std::collections::HashMap;
use std::path::Path;

use super::ConfigError;

/// Variables from the process environment, `.env.local` and `.env`.
#[derive(Clone, Default)]
pub struct Env {
    files: HashMap<String, String>,
    process: HashMap<String, String>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values are secrets: show names only.
        let mut names: Vec<&String> = self.files.keys().chain(self.process.keys()).collect();
        names.sort();
        names.dedup();
        f.debug_struct("Env").field("names", &names.len()).finish()
    }
}

impl Env {
    /// Read `.env` and `.env.local` from `dir` and snapshot the process environment.
    pub fn load(dir: &Path) -> Result<Env, ConfigError> {
        let mut files = HashMap::new();
        for name in [".env", ".env.local"] {
            let path = dir.join(name);
            if !path.exists() {
                continue;
            }
            let iter = dotenvy::from_path_iter(&path).map_err(|e| ConfigError::File {
                path: path.clone(),
                message: describe(&e),
            })?;
            for item in iter {
                let (k, v) = item.map_err(|e| ConfigError::File {
                    path: path.clone(),
                    message: describe(&e),
                })?;
                files.insert(k, v);
            }
        }
        let process = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Ok(Env { files, process })
    }

    /// An environment built from pairs, for tests and embedded projects.
    pub fn from_pairs<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Env {
        Env {
            files: pairs.into_iter().collect(),
            process: HashMap::new(),
        }
    }

    /// The value of `name`: the process environment wins over the files.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.process
            .get(name)
            .or_else(|| self.files.get(name))
            .map(String::as_str)
    }
}

/// dotenvy's errors can quote the offending line, which may hold a secret: keep only the
/// position.
fn describe(e: &dotenvy::Error) -> String {
    match e {
        dotenvy::Error::LineParse(_, index) => format!("cannot parse the line at byte {index}"),
        dotenvy::Error::Io(io) => io.to_string(),
        _ => "cannot read the file".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_overrides_dotenv_and_process_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".env"),
            "A=from-env\nB=from-env\nPATH=nope\n",
        )
        .unwrap();
        std::fs::write(dir.path().join(".env.local"), "B=from-local\n").unwrap();
        let env = Env::load(dir.path()).unwrap();
        assert_eq!(env.get("A"), Some("from-env"));
        assert_eq!(env.get("B"), Some("from-local"));
        assert_ne!(env.get("PATH"), Some("nope"));
    }

    #[test]
    fn bad_line_does_not_echo_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), "GOOD=1\nBAD LINE s3cret\n").unwrap();
        let err = Env::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(".env"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}
