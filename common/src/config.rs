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

/// The project's variable `name`, or else `seed_name`: the variable the
/// system this project replaces was configured with, so that its
/// deployments start unchanged. The project's name wins when both are set.
/// Says in the log which variable was used (names only: values may be
/// secrets).
pub fn env_string_or_seed(name: &str, seed_name: &str) -> Option<(String, String)> {
    match (env_string(name), env_string(seed_name)) {
        (Some(value), Some(_)) => {
            tracing::warn!(
                variable = name,
                ignored = seed_name,
                "configuration: both {name} and {seed_name} are set; using {name}"
            );
            Some((value, name.to_owned()))
        }
        (Some(value), None) => {
            tracing::info!(variable = name, "configuration: using {name}");
            Some((value, name.to_owned()))
        }
        (None, Some(value)) => {
            tracing::info!(
                variable = seed_name,
                "configuration: using {seed_name} (the seed system's name for {name})"
            );
            Some((value, seed_name.to_owned()))
        }
        (None, None) => None,
    }
}

/// `raw` as an `http://` or `https://` URL with a host, without a trailing
/// slash; otherwise an error naming `variable`, so that a typo stops the
/// service at start instead of failing every request later.
pub fn http_url(variable: &str, raw: &str) -> Result<String, ConfigError> {
    let invalid = |why: String| ConfigError::Invalid {
        name: variable.to_owned(),
        message: format!("{raw:?} is not a usable URL: {why}"),
    };
    let url = reqwest::Url::parse(raw).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "the scheme is {:?}, not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host".into()));
    }
    Ok(raw.trim_end_matches('/').to_owned())
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

    #[test]
    fn http_urls_are_checked_and_lose_their_trailing_slash() {
        assert_eq!(
            http_url("V", "http://ollama:11434/").unwrap(),
            "http://ollama:11434"
        );
        assert_eq!(
            http_url("V", "https://api.example.com/base").unwrap(),
            "https://api.example.com/base"
        );
        for bad in [
            "ollama:11434",
            "not a url",
            "ftp://x",
            "http://",
            "/relative",
        ] {
            let err = http_url("OLLAMA_BASE_URL", bad).unwrap_err().to_string();
            assert!(err.starts_with("OLLAMA_BASE_URL: "), "{bad}: {err}");
        }
    }

    #[test]
    fn the_projects_name_wins_over_the_seeds() {
        // SAFETY: this test owns these variable names; no other test reads them.
        unsafe {
            std::env::set_var("VCS_TEST_OWN", "own");
            std::env::set_var("VCS_TEST_SEED", "seed");
        }
        assert_eq!(
            env_string_or_seed("VCS_TEST_OWN", "VCS_TEST_SEED"),
            Some(("own".into(), "VCS_TEST_OWN".into()))
        );
        unsafe { std::env::remove_var("VCS_TEST_OWN") };
        assert_eq!(
            env_string_or_seed("VCS_TEST_OWN", "VCS_TEST_SEED"),
            Some(("seed".into(), "VCS_TEST_SEED".into()))
        );
        unsafe { std::env::remove_var("VCS_TEST_SEED") };
        assert_eq!(env_string_or_seed("VCS_TEST_OWN", "VCS_TEST_SEED"), None);
    }
}
