//! Cross-origin access for browser clients on another origin (the web
//! client served by the chat service calls the voice service). Off unless
//! `CORS_ALLOWED_ORIGINS` lists origins: the APIs authenticate with a
//! bearer token, never cookies, so allowing an origin grants it nothing
//! without a token, but the default stays closed.

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::{ConfigError, env_string};

pub const ENV: &str = "CORS_ALLOWED_ORIGINS";

/// Which origins may call the API from a browser.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AllowedOrigins {
    #[default]
    None,
    Any,
    List(Vec<String>),
}

impl AllowedOrigins {
    /// From `CORS_ALLOWED_ORIGINS`: `*`, or comma-separated origins such as
    /// `http://127.0.0.1:8007,https://app.example.com`.
    pub fn from_env() -> Result<Self, ConfigError> {
        env_string(ENV).map_or(Ok(Self::None), |raw| Self::parse(&raw))
    }

    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let raw = raw.trim();
        if raw == "*" {
            return Ok(Self::Any);
        }
        let mut origins = Vec::new();
        for origin in raw.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            validate(origin)?;
            origins.push(origin.to_owned());
        }
        Ok(if origins.is_empty() {
            Self::None
        } else {
            Self::List(origins)
        })
    }

    /// The layer to add to a router; `None` when no origin is allowed.
    /// `exposed` names the response headers a browser client may read
    /// (each service knows its own).
    pub fn layer(&self, exposed: &[&'static str]) -> Option<CorsLayer> {
        let allow = match self {
            Self::None => return None,
            Self::Any => AllowOrigin::any(),
            Self::List(origins) => AllowOrigin::list(
                origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok())
                    .collect::<Vec<_>>(),
            ),
        };
        Some(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([Method::GET, Method::POST, Method::DELETE])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
                .expose_headers(
                    exposed
                        .iter()
                        .copied()
                        .map(HeaderName::from_static)
                        .collect::<Vec<_>>(),
                )
                .max_age(std::time::Duration::from_secs(600)),
        )
    }
}

/// An origin is `scheme://host[:port]`: no path, no trailing slash (browsers
/// send it exactly so, and a mismatch would silently never match).
fn validate(origin: &str) -> Result<(), ConfigError> {
    let invalid = |why: &str| ConfigError::Invalid {
        name: ENV.into(),
        message: format!("{origin:?} {why}"),
    };
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .ok_or_else(|| invalid("must start with http:// or https://"))?;
    if rest.is_empty() || rest.contains('/') {
        return Err(invalid("must be scheme://host[:port] with no path"));
    }
    HeaderValue::from_str(origin).map_err(|_| invalid("is not a valid header value"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_any_and_nothing() {
        assert_eq!(AllowedOrigins::parse("").unwrap(), AllowedOrigins::None);
        assert_eq!(AllowedOrigins::parse(" * ").unwrap(), AllowedOrigins::Any);
        assert_eq!(
            AllowedOrigins::parse("http://127.0.0.1:8007, https://app.example.com").unwrap(),
            AllowedOrigins::List(vec![
                "http://127.0.0.1:8007".into(),
                "https://app.example.com".into()
            ])
        );
        assert!(AllowedOrigins::None.layer(&[]).is_none());
        assert!(AllowedOrigins::Any.layer(&["x-cache"]).is_some());
    }

    #[test]
    fn refuses_what_a_browser_would_never_send() {
        for bad in [
            "127.0.0.1:8007",
            "http://app.example.com/",
            "https://app.example.com/path",
            "ftp://x",
        ] {
            let err = AllowedOrigins::parse(bad).unwrap_err().to_string();
            assert!(err.contains(ENV), "{bad}: {err}");
        }
    }
}
