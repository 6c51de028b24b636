//! RS256 and ES256 verification with real keys (made by openssl), and the
//! algorithm-confusion attack: an HS256 token "signed" with the public key
//! as the shared secret must be refused.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use voicechat_common::auth::{JwtSettings, JwtVerifier};

/// (private PEM, public PEM), or `None` without openssl.
fn keypair(dir: &std::path::Path, args: &[&str]) -> Option<(Vec<u8>, Vec<u8>)> {
    let private = dir.join(format!("{}.pem", args.join("_").replace([':', '-'], "")));
    let made = Command::new("openssl")
        .arg("genpkey")
        .args(args)
        .arg("-out")
        .arg(&private)
        .status()
        .ok()?;
    if !made.success() {
        return None;
    }
    let public = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .output()
        .ok()?;
    Some((std::fs::read(&private).ok()?, public.stdout))
}

fn claims() -> serde_json::Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({"sub": "alice", "exp": now + 60})
}

#[test]
fn public_key_algorithms_are_pinned() {
    let dir = std::env::temp_dir().join(format!("vcs-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rsa = keypair(
        &dir,
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    );
    let ec = keypair(
        &dir,
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let (Some((rsa_private, rsa_public)), Some((ec_private, ec_public))) = (rsa, ec) else {
        assert!(voicechat_testkit::have_or_skip(
            false,
            "public_key_algorithms_are_pinned",
            "openssl",
            "openssl"
        ));
        return;
    };
    let rs256 = JwtVerifier::new(&JwtSettings::public_key(
        Algorithm::RS256,
        rsa_public.clone(),
    ))
    .unwrap();
    let es256 = JwtVerifier::new(&JwtSettings::public_key(Algorithm::ES256, ec_public)).unwrap();
    let rsa_token = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims(),
        &EncodingKey::from_rsa_pem(&rsa_private).unwrap(),
    )
    .unwrap();
    let ec_token = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &claims(),
        &EncodingKey::from_ec_pem(&ec_private).unwrap(),
    )
    .unwrap();

    assert_eq!(rs256.verify(&rsa_token).unwrap().user_id, "alice");
    assert_eq!(es256.verify(&ec_token).unwrap().user_id, "alice");
    assert!(
        rs256.verify(&ec_token).is_err(),
        "ES256 token refused by the RS256 verifier"
    );
    assert!(
        es256.verify(&rsa_token).is_err(),
        "RS256 token refused by the ES256 verifier"
    );

    // Algorithm confusion: HS256 keyed with the RSA public key's PEM text.
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(&rsa_public),
    )
    .unwrap();
    assert!(
        rs256.verify(&confused).is_err(),
        "HS256 token keyed with the public key was accepted"
    );

    // Not a key of the right kind: a clear configuration error.
    assert!(JwtVerifier::new(&JwtSettings::public_key(Algorithm::ES256, rsa_private)).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
