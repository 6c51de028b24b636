//! OCI image references pinned by digest
//! (`registry.example.org:5000/models/whisper@sha256:<64 hex>`): the form
//! a model from an image is given in. A digest, not a tag, so that the
//! cache knows what it holds and a pushed-over tag never changes a stack's
//! model behind its back.

use std::fmt;
use std::str::FromStr;

use super::digest::Digest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `host` or `host:port`, as written.
    pub registry: String,
    /// `models/whisper`: lower-case path components.
    pub repository: String,
    /// The manifest's (or index's) digest.
    pub digest: Digest,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("image {image:?}: {reason}")]
pub struct ImageRefError {
    pub image: String,
    pub reason: &'static str,
}

impl FromStr for ImageRef {
    type Err = ImageRefError;

    fn from_str(image: &str) -> Result<Self, Self::Err> {
        let fail = |reason| ImageRefError {
            image: image.to_owned(),
            reason,
        };
        if image.len() > 512 {
            return Err(fail("longer than 512 characters"));
        }
        let (name, digest) = image.split_once("@sha256:").ok_or_else(|| {
            fail("must be pinned by digest: <registry>/<repository>@sha256:<64 hex digits>")
        })?;
        let digest = Digest::sha256(digest)
            .map_err(|_| fail("the digest must be 64 lower-case hex digits"))?;
        let (registry, repository) = name
            .split_once('/')
            .ok_or_else(|| fail("must name its registry host: <registry>/<repository>@sha256:…"))?;
        if !valid_registry(registry) {
            return Err(fail(
                "the registry must be a host name or IP, with an optional :port",
            ));
        }
        if repository.contains(':') {
            return Err(fail("a tag and a digest together: give only the digest"));
        }
        if !repository.split('/').all(valid_path_component) {
            return Err(fail(
                "repository path components are lower-case letters and digits, separated by '.', '_', '__' or '-'",
            ));
        }
        Ok(Self {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            digest,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.registry, self.repository, self.digest)
    }
}

/// A host name (a dot, a port or `localhost` distinguishes it from a
/// repository component, as Docker's rules have it) or IPv4 address.
fn valid_registry(registry: &str) -> bool {
    let (host, port) = match registry.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (registry, None),
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    let looks_like_host = host.contains('.') || port.is_some() || host == "localhost";
    port_ok && host_ok && looks_like_host
}

/// OCI distribution spec: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    #[test]
    fn a_pinned_reference_parses_into_its_parts() {
        let r: ImageRef = format!("10.244.0.1:5000/voicechat/whisper-tiny@sha256:{D}")
            .parse()
            .unwrap();
        assert_eq!(r.registry, "10.244.0.1:5000");
        assert_eq!(r.repository, "voicechat/whisper-tiny");
        assert_eq!(r.digest.hex, D);
        assert_eq!(
            r.to_string(),
            format!("10.244.0.1:5000/voicechat/whisper-tiny@sha256:{D}")
        );
        assert!(
            format!("ghcr.io/a/b__c.d-e@sha256:{D}")
                .parse::<ImageRef>()
                .is_ok()
        );
        assert!(
            format!("localhost/a@sha256:{D}")
                .parse::<ImageRef>()
                .is_ok()
        );
    }

    #[test]
    fn tags_short_names_and_bad_parts_are_refused_with_the_reason() {
        for (image, says) in [
            ("ghcr.io/a/b:1.0".to_owned(), "pinned by digest"),
            (format!("ghcr.io/a/b:1.0@sha256:{D}"), "a tag and a digest"),
            (format!("library/ubuntu@sha256:{D}"), "registry must be"),
            (format!("ubuntu@sha256:{D}"), "registry host"),
            (format!("ghcr.io/A/b@sha256:{D}"), "lower-case"),
            (format!("ghcr.io/a//b@sha256:{D}"), "lower-case"),
            (format!("ghcr.io/a/b-@sha256:{D}"), "lower-case"),
            ("ghcr.io/a/b@sha256:abc".to_owned(), "64 lower-case hex"),
            (format!("ghcr.io:0/a@sha256:{D}"), "registry must be"),
        ] {
            let err = image.parse::<ImageRef>().unwrap_err();
            assert!(err.to_string().contains(says), "{image}: {err}");
        }
    }
}
