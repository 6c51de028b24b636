//! A file's digest as its publisher gives it: `sha256:<hex>`, `sha1:<hex>`
//! (whisper.cpp's models table) or `md5:<hex>` (piper-voices'
//! `voices.json`). The loader checks a download against it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Sha256,
    Sha1,
    Md5,
}

impl DigestAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha1 => "sha1",
            Self::Md5 => "md5",
        }
    }

    /// Length of the digest in hex digits.
    fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha1 => 40,
            Self::Md5 => 32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub algorithm: DigestAlgorithm,
    /// Lower-case hex.
    pub hex: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("digest {0:?} has no algorithm: write sha256:<hex>, sha1:<hex> or md5:<hex>")]
    NoAlgorithm(String),
    #[error("digest algorithm {0:?} is not one of sha256, sha1, md5")]
    UnknownAlgorithm(String),
    #[error("{algorithm} digest must be {expected} hex digits, got {got:?}")]
    Malformed {
        algorithm: &'static str,
        expected: usize,
        got: String,
    },
}

impl Digest {
    pub fn sha256(hex: &str) -> Result<Self, DigestError> {
        Self::new(DigestAlgorithm::Sha256, hex)
    }

    pub fn new(algorithm: DigestAlgorithm, hex: &str) -> Result<Self, DigestError> {
        let hex = hex.to_ascii_lowercase();
        if hex.len() != algorithm.hex_len() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DigestError::Malformed {
                algorithm: algorithm.as_str(),
                expected: algorithm.hex_len(),
                got: hex,
            });
        }
        Ok(Self { algorithm, hex })
    }

    pub fn hasher(&self) -> Hasher {
        Hasher::new(self.algorithm)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (algorithm, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::NoAlgorithm(s.to_owned()))?;
        let algorithm = match algorithm {
            "sha256" => DigestAlgorithm::Sha256,
            "sha1" => DigestAlgorithm::Sha1,
            "md5" => DigestAlgorithm::Md5,
            other => return Err(DigestError::UnknownAlgorithm(other.to_owned())),
        };
        Self::new(algorithm, hex)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An incremental hash of one of the algorithms.
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha1(sha1::Sha1),
    Md5(md5::Md5),
}

impl Hasher {
    pub fn new(algorithm: DigestAlgorithm) -> Self {
        match algorithm {
            DigestAlgorithm::Sha256 => Self::Sha256(sha2::Sha256::new()),
            DigestAlgorithm::Sha1 => Self::Sha1(sha1::Sha1::new()),
            DigestAlgorithm::Md5 => Self::Md5(md5::Md5::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(bytes),
            Self::Sha1(h) => h.update(bytes),
            Self::Md5(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Self::Sha256(h) => (DigestAlgorithm::Sha256, hex::encode(h.finalize())),
            Self::Sha1(h) => (DigestAlgorithm::Sha1, hex::encode(h.finalize())),
            Self::Md5(h) => (DigestAlgorithm::Md5, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_algorithm_hashes_as_its_reference() {
        // The digests of "abc" from RFC 1321, FIPS 180-1 and FIPS 180-2.
        for (algorithm, want) in [
            (DigestAlgorithm::Md5, "md5:900150983cd24fb0d6963f7d28e17f72"),
            (
                DigestAlgorithm::Sha1,
                "sha1:a9993e364706816aba3e25717850c26c9cd0d89d",
            ),
            (
                DigestAlgorithm::Sha256,
                "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
        ] {
            let mut h = Hasher::new(algorithm);
            h.update(b"a");
            h.update(b"bc");
            assert_eq!(h.finish().to_string(), want);
            assert_eq!(want.parse::<Digest>().unwrap().to_string(), want);
        }
    }

    #[test]
    fn malformed_digests_are_refused_naming_the_problem() {
        assert_eq!(
            "abc".parse::<Digest>(),
            Err(DigestError::NoAlgorithm("abc".into()))
        );
        assert_eq!(
            "crc32:00".parse::<Digest>(),
            Err(DigestError::UnknownAlgorithm("crc32".into()))
        );
        let err = "sha256:abcd".parse::<Digest>().unwrap_err();
        assert!(err.to_string().contains("64 hex digits"), "{err}");
        assert!(
            "sha1:zz93e364706816aba3e25717850c26c9cd0d89d"
                .parse::<Digest>()
                .is_err()
        );
        assert_eq!(
            "MD5:900150983CD24FB0D6963F7D28E17F72".parse::<Digest>(),
            Err(DigestError::UnknownAlgorithm("MD5".into())),
            "the algorithm is lower case, as published"
        );
        assert_eq!(
            Digest::sha256(&"A".repeat(64)).unwrap().hex,
            "a".repeat(64),
            "hex is kept lower case"
        );
    }
}
