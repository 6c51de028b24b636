//! Reading typed settings from environment variables (12-factor), with
//! secrets preferably from files (`NAME_FILE`) so they never sit in a pod spec.

use std::str::FromStr;

/// A setting that is present but unusable, or absent but required.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {message}")]
    Invalid { name: String, message: String },
    #[error("{name}: cannot read {path}: {source}")]
    File {
        name: String,
        path: String,
        source: std::io::Error,
    },
    #[error("{name} is required: {hint}")]
    Missing { name: String, hint: String },
}

/// The variable's value, trimmed; `None` when unset or blank.
pub fn env_string(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Parses the variable, falling back to `default` when unset or blank.
pub fn env_parse<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match env_string(name) {
        None => Ok(default),
        Some(raw) => raw.parse().map_err(|e: T::Err| ConfigError::Invalid {
            name: name.to_owned(),
            message: format!("cannot parse {raw:?}: {e}"),
        }),
    }
}

/// Parses a boolean variable (`true/false/1/0/yes/no`).
pub fn env_bool(name: &str, default: bool) -> Result<bool, ConfigError> {
    match env_string(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => Ok(true),
        Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => Ok(false),
        Some(v) => Err(ConfigError::Invalid {
            name: name.to_owned(),
            message: format!("expected true or false, got {v:?}"),
        }),
    }
}

/// A secret from `{name}_FILE` (preferred: mounted Secrets) or `{name}`.
/// Trailing newlines in files are dropped because editors and `kubectl
/// create secret --from-file` add them and they are never intended.
pub fn secret(name: &str) -> Result<Option<String>, ConfigError> {
    let file_var = format!("{name}_FILE");
    if let Some(path) = env_string(&file_var) {
        let raw = std::fs::read_to_string(&path).map_err(|source| ConfigError::File {
            name: file_var.clone(),
            path: path.clone(),
            source,
        })?;
        let value = raw.trim_end_matches(['\n', '\r']).to_owned();
        if value.is_empty() {
            return Err(ConfigError::Invalid {
                name: file_var,
                message: format!("{path} is empty"),
            });
        }
        return Ok(Some(value));
    }
    Ok(env_string(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_wins_and_loses_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("vcs-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        std::fs::write(&path, "abc\n").unwrap();
        // SAFETY: this test owns these variable names; no other test reads them.
        unsafe {
            std::env::set_var("VCS_TEST_SECRET", "from-env");
            std::env::set_var("VCS_TEST_SECRET_FILE", &path);
        }
        assert_eq!(secret("VCS_TEST_SECRET").unwrap().as_deref(), Some("abc"));
        unsafe { std::env::remove_var("VCS_TEST_SECRET_FILE") };
        assert_eq!(
            secret("VCS_TEST_SECRET").unwrap().as_deref(),
            Some("from-env")
        );
    }

    #[test]
    fn bad_number_names_the_variable() {
        unsafe { std::env::set_var("VCS_TEST_NUM", "twelve") };
        let err = env_parse::<u32>("VCS_TEST_NUM", 1).unwrap_err();
        assert!(err.to_string().starts_with("VCS_TEST_NUM:"), "{err}");
    }
}
