//! A read-only client of one repository through the OCI distribution API
//! (`/v2/<repository>/manifests|blobs/<digest>`), with the auth registries
//! ask for: none, a bearer token from the registry's token service
//! (anonymous or with credentials, as Docker Hub, GHCR and Harbor do), or
//! basic credentials. Credentials come from a Docker config JSON, the
//! format of a `kubernetes.io/dockerconfigjson` Secret.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use serde::Deserialize;
use voicechat_common::models::{Digest, ImageRef, OciSource};

use super::super::fetch::FetchError;

/// The manifest types the loader reads: OCI's and Docker's, single and
/// multi-platform.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";
/// Manifests are small; a larger answer is not one.
const MANIFEST_LIMIT: usize = 4 << 20;
const TOKEN_LIMIT: usize = 1 << 20;

pub struct Registry<'a> {
    client: &'a reqwest::Client,
    /// `<scheme>://<host>/v2/<repository>`.
    base: String,
    reference: ImageRef,
    credentials: Option<Credentials>,
    /// The last challenge, to ask for a fresh token when one expires
    /// during a long download.
    challenge: Option<Challenge>,
    authorization: Option<HeaderValue>,
    /// For timeout errors' messages: the client's read timeout.
    timeout_secs: u64,
}

#[derive(Clone)]
struct Credentials {
    username: String,
    password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl<'a> Registry<'a> {
    pub fn new(
        client: &'a reqwest::Client,
        source: &OciSource,
        timeout_secs: u64,
    ) -> Result<Self, FetchError> {
        let bad = |reason: String| FetchError::BadManifest {
            image: source.image.clone(),
            reason,
        };
        let reference: ImageRef = source.image.parse().map_err(|e| bad(format!("{e}")))?;
        let credentials = match &source.auth_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| bad(format!("cannot read the pull secret {path}: {e}")))?;
                let found = credentials_for(&text, &reference.registry)
                    .map_err(|e| bad(format!("the pull secret {path}: {e}")))?;
                if found.is_none() {
                    tracing::warn!(registry = %reference.registry, "the pull secret has no entry for this registry; pulling anonymously");
                }
                found
            }
            None => None,
        };
        let scheme = if source.plain_http { "http" } else { "https" };
        let host = api_host(&reference.registry);
        Ok(Self {
            client,
            base: format!("{scheme}://{host}/v2/{}", reference.repository),
            reference,
            credentials,
            challenge: None,
            authorization: None,
            timeout_secs,
        })
    }

    pub fn client(&self) -> &'a reqwest::Client {
        self.client
    }

    pub fn image(&self) -> String {
        self.reference.to_string()
    }

    pub fn pinned_digest(&self) -> &Digest {
        &self.reference.digest
    }

    pub fn blob_url(&self, digest: &Digest) -> String {
        format!("{}/blobs/{digest}", self.base)
    }

    /// The header for blob requests, once a challenge asked for one.
    pub fn authorization(&self) -> Option<&HeaderValue> {
        self.authorization.as_ref()
    }

    /// The manifest (or index) of `digest`, its bytes checked against it.
    pub async fn manifest(&mut self, digest: &Digest) -> Result<Vec<u8>, FetchError> {
        let url = format!("{}/manifests/{digest}", self.base);
        let mut response = self.get_manifest(&url).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            self.challenge =
                Some(
                    challenge_of(&response).ok_or_else(|| FetchError::Unauthorized {
                        image: self.image(),
                        reason: "HTTP 401 without a WWW-Authenticate challenge the loader knows"
                            .into(),
                    })?,
                );
            self.authorize().await?;
            response = self.get_manifest(&url).await?;
        }
        match response.status().as_u16() {
            200 => {}
            404 => return Err(FetchError::NotFound { url }),
            status @ (401 | 403) => {
                return Err(FetchError::Unauthorized {
                    image: self.image(),
                    reason: format!(
                        "HTTP {status} for the manifest{}",
                        if self.credentials.is_none() {
                            " (no credentials: give the model a pullSecret)"
                        } else {
                            ""
                        }
                    ),
                });
            }
            status => return Err(FetchError::Http { url, status }),
        }
        let body = read_limited(response, MANIFEST_LIMIT, &url, self.timeout_secs).await?;
        let mut hasher = digest.hasher();
        hasher.update(&body);
        let actual = hasher.finish();
        if actual != *digest {
            return Err(FetchError::DigestMismatch {
                path: format!("{} manifest", self.image()),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(body)
    }

    /// A fresh token for the last challenge (one expired mid-download).
    pub async fn reauthorize(&mut self) -> Result<(), FetchError> {
        if self.challenge.is_none() {
            return Err(FetchError::Unauthorized {
                image: self.image(),
                reason: "HTTP 401 for a blob, and the registry gave no challenge".into(),
            });
        }
        self.authorize().await
    }

    async fn get_manifest(&self, url: &str) -> Result<reqwest::Response, FetchError> {
        let mut request = self.client.get(url).header(ACCEPT, MANIFEST_TYPES);
        if let Some(value) = &self.authorization {
            request = request.header(AUTHORIZATION, value.clone());
        }
        request
            .send()
            .await
            .map_err(|e| network(url, &e, self.timeout_secs))
    }

    async fn authorize(&mut self) -> Result<(), FetchError> {
        let unauthorized = |reason: String| FetchError::Unauthorized {
            image: self.reference.to_string(),
            reason,
        };
        let value = match &self.challenge {
            None => return Ok(()),
            Some(Challenge::Basic) => {
                let credentials = self.credentials.as_ref().ok_or_else(|| {
                    unauthorized(
                        "the registry asks for credentials: give the model a pullSecret".into(),
                    )
                })?;
                basic(credentials)
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let scope = scope
                    .clone()
                    .unwrap_or_else(|| format!("repository:{}:pull", self.reference.repository));
                let mut url = reqwest::Url::parse(realm)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        unauthorized(format!("the token service {realm:?} is no http(s) URL"))
                    })?;
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    query.append_pair("scope", &scope);
                }
                let mut request = self.client.get(url);
                if let Some(credentials) = &self.credentials {
                    request = request.header(AUTHORIZATION, basic(credentials));
                }
                let response = request
                    .send()
                    .await
                    .map_err(|e| network(realm, &e, self.timeout_secs))?;
                let status = response.status().as_u16();
                if status != 200 {
                    return Err(unauthorized(format!(
                        "the token service {realm} answered HTTP {status}"
                    )));
                }
                let body = read_limited(response, TOKEN_LIMIT, realm, self.timeout_secs).await?;
                let token: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
                    unauthorized(format!("the token service {realm} sent no token: {e}"))
                })?;
                let token = token.token.or(token.access_token).ok_or_else(|| {
                    unauthorized(format!("the token service {realm} sent no token"))
                })?;
                HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| unauthorized("the token is not a header value".into()))?
            }
        };
        let mut value = value;
        value.set_sensitive(true);
        self.authorization = Some(value);
        Ok(())
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
}

/// Docker Hub's references say `docker.io`; its API is elsewhere.
fn api_host(registry: &str) -> &str {
    if registry == "docker.io" || registry == "index.docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    }
}

fn basic(credentials: &Credentials) -> HeaderValue {
    let pair = format!("{}:{}", credentials.username, credentials.password);
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

fn network(url: &str, e: &reqwest::Error, secs: u64) -> FetchError {
    if e.is_timeout() {
        FetchError::Timeout {
            url: url.to_owned(),
            secs,
        }
    } else {
        FetchError::Network {
            url: url.to_owned(),
            reason: voicechat_common::error_text::with_causes(e),
        }
    }
}

async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
    url: &str,
    timeout_secs: u64,
) -> Result<Vec<u8>, FetchError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| network(url, &e, timeout_secs))?
    {
        if body.len() + chunk.len() > limit {
            return Err(FetchError::Network {
                url: url.to_owned(),
                reason: format!("the answer is over {limit} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn challenge_of(response: &reqwest::Response) -> Option<Challenge> {
    response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(parse_challenge)
}

/// `Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull"`
/// or `Basic realm="..."`.
fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// `key="value", key=value`: quoted values may hold commas.
fn parse_params(text: &str) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, a)) => (v.to_owned(), a),
                None => (quoted.to_owned(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, a)) => (v.trim().to_owned(), a),
                None => (after.trim().to_owned(), ""),
            }
        };
        params.insert(key, value);
        rest = after.trim_start_matches([',', ' ']);
    }
    params
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// The credentials a Docker config JSON holds for `registry` (its keys
/// may carry a scheme and a path, as `docker login` writes them).
fn credentials_for(config: &str, registry: &str) -> Result<Option<Credentials>, String> {
    let config: DockerConfig =
        serde_json::from_str(config).map_err(|e| format!("not a Docker config JSON: {e}"))?;
    let wanted = hub_alias(registry);
    let Some(entry) = config.auths.iter().find_map(|(key, entry)| {
        let host = key
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("");
        (hub_alias(host) == wanted).then_some(entry)
    }) else {
        return Ok(None);
    };
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Some(Credentials {
            username: username.clone(),
            password: password.clone(),
        }));
    }
    let auth = entry
        .auth
        .as_deref()
        .ok_or("the registry's entry has neither auth nor username and password")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| "the registry's auth is not base64")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "the registry's auth is not UTF-8")?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or("the registry's auth is not <user>:<password>")?;
    Ok(Some(Credentials {
        username: username.to_owned(),
        password: password.to_owned(),
    }))
}

fn hub_alias(host: &str) -> &str {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "docker.io",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_of_the_common_registries_parse() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/ubuntu:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Bearer realm="https://ghcr.io/token", service="ghcr.io""#),
            Some(Challenge::Bearer {
                realm: "https://ghcr.io/token".into(),
                service: Some("ghcr.io".into()),
                scope: None,
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None, "no realm");
    }

    #[test]
    fn credentials_come_from_the_entry_of_the_registry() {
        let config = r#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},
            "reg.local:5000": {"username": "u", "password": "p:w"},
            "other.example": {"auth": "!!"}
        }}"#;
        let hub = credentials_for(config, "docker.io").unwrap().unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("hub", "secret")
        );
        let local = credentials_for(config, "reg.local:5000").unwrap().unwrap();
        assert_eq!(
            (local.username.as_str(), local.password.as_str()),
            ("u", "p:w")
        );
        assert!(
            credentials_for(config, "nowhere.example")
                .unwrap()
                .is_none()
        );
        assert!(
            credentials_for(config, "other.example")
                .unwrap_err()
                .contains("base64")
        );
        assert!(
            credentials_for("{\"auths\": [1]", "x")
                .unwrap_err()
                .contains("Docker config")
        );
        assert!(
            !format!("{local:?}").contains("p:w"),
            "the password stays out of Debug"
        );
    }
}
