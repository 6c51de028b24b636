//! Uploads in every container the service reads, made by ffmpeg (an
//! encoder nobody here wrote) from one 3 s tone: each decodes to its length
//! and rate; truncated, damaged, over-long and lying files are refused
//! with the reason (or, where the container cannot tell a cut from an end,
//! decode to less), never a panic; through the HTTP API each refusal is a
//! 400 naming the problem and the service keeps serving. Needs ffmpeg
//! (Debian's; scripts/install-deps.sh installs it).

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;
use support::*;
use voicechat_voice::audio::{AudioError, decode};

/// name, ffmpeg output options, rate it decodes at, whether a file cut in
/// half is told from a shorter one (a declared length, or a broken frame).
const CONTAINERS: &[(&str, &str, u32, bool)] = &[
    ("mp3", "-c:a libmp3lame -b:a 64k -f mp3", 22_050, true),
    ("m4a", "-c:a aac -b:a 64k -f ipod", 22_050, true),
    ("adts", "-c:a aac -b:a 64k -f adts", 22_050, false),
    ("ogg-opus", "-c:a libopus -b:a 32k -f ogg", 48_000, false),
    ("ogg-vorbis", "-c:a libvorbis -f ogg", 22_050, true),
    ("webm", "-c:a libopus -b:a 32k -f webm", 48_000, true),
    ("flac", "-c:a flac -f flac", 22_050, true),
    ("wav-stereo-48k", "-ac 2 -ar 48000 -f wav", 48_000, true),
];

fn have_ffmpeg(test: &str) -> bool {
    let found = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    voicechat_testkit::have_or_skip(found, test, "ffmpeg", "ffmpeg on PATH (Debian's ffmpeg)")
}

/// name, rate, whether a cut is detected, the file's bytes.
type Made = (&'static str, u32, bool, Vec<u8>);

/// The files, made once per test binary.
fn files() -> &'static Vec<Made> {
    static FILES: OnceLock<Vec<Made>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vcs-uploads-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let source = dir.join("tone.wav");
        ffmpeg(
            &[
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:duration=3",
                "-ar",
                "22050",
            ],
            &source,
        );
        let files = CONTAINERS
            .iter()
            .map(|(name, options, rate, detects_cut)| {
                let out = dir.join(name);
                let mut args = vec!["-i", source.to_str().unwrap()];
                args.extend(options.split(' '));
                ffmpeg(&args, &out);
                (*name, *rate, *detects_cut, std::fs::read(&out).unwrap())
            })
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        files
    })
}

fn ffmpeg(args: &[&str], out: &PathBuf) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg {args:?}");
}

#[test]
fn every_container_decodes_to_its_length_and_rate() {
    if !have_ffmpeg("every_container_decodes_to_its_length_and_rate") {
        return;
    }
    for (name, rate, _, bytes) in files() {
        let audio = decode(bytes, 30).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(audio.sample_rate, *rate, "{name}");
        let secs = audio.duration_secs();
        assert!(
            (2.95..=3.15).contains(&secs),
            "{name}: {secs} s of a 3 s tone"
        );
        let loudest = audio.samples.iter().fold(0f32, |m, s| m.max(s.abs()));
        // ffmpeg's sine is at 1/8 of full scale (less once spread over two channels).
        assert!(
            loudest > 0.05,
            "{name}: the tone decoded to silence ({loudest})"
        );
        match decode(bytes, 1) {
            Err(AudioError::TooLong { max: 1, .. }) => {}
            other => panic!("{name} over a 1 s limit: {other:?}"),
        }
    }
}

#[test]
fn truncated_and_damaged_files_are_refused_or_decode_to_less_never_a_panic() {
    if !have_ffmpeg("truncated_and_damaged_files_are_refused_or_decode_to_less_never_a_panic") {
        return;
    }
    for (name, _, detects_cut, bytes) in files() {
        let half = decode(&bytes[..bytes.len() / 2], 30);
        if *detects_cut {
            assert!(
                matches!(
                    half,
                    Err(AudioError::Corrupt(_) | AudioError::NotAudio(_) | AudioError::NotWav(_))
                ),
                "{name} cut in half: {:?}",
                half.map(|a| a.duration_secs())
            );
        } else if let Ok(audio) = half {
            assert!(
                audio.duration_secs() < 2.5,
                "{name} cut in half decoded to {} s",
                audio.duration_secs()
            );
        }
        for start in [bytes.len() / 3, bytes.len() / 2] {
            let mut damaged = bytes.clone();
            for b in &mut damaged[start..(start + 64).min(bytes.len())] {
                *b ^= 0x5a;
            }
            if let Ok(audio) = decode(&damaged, 30) {
                assert!(
                    audio.duration_secs() <= 3.2,
                    "{name} damaged: {} s",
                    audio.duration_secs()
                );
                assert!(audio.samples.iter().all(|s| s.is_finite()));
            }
        }
    }
}

#[test]
fn lying_headers_are_refused_before_anything_is_allocated_for_them() {
    if !have_ffmpeg("lying_headers_are_refused_before_anything_is_allocated_for_them") {
        return;
    }
    let flac = &files().iter().find(|f| f.0 == "flac").unwrap().3;
    // STREAMINFO's 36-bit total sample count at its largest: 2^36 samples,
    // 36 days at 22 kHz.
    let mut huge = flac.clone();
    huge[21] |= 0x0f;
    huge[22..26].copy_from_slice(&[0xff; 4]);
    match decode(&huge, 30) {
        Err(AudioError::TooLong { secs, .. }) => assert!(secs > 1e6, "{secs}"),
        other => panic!("a FLAC declaring 36 days: {other:?}"),
    }
    // Tags whose declared lengths are past the file (Symphonia allocated
    // them as declared: 4 GB for 10 kB, found by fuzzing): FLAC's are not
    // read at all, so the audio still decodes; an Ogg one is refused.
    let mut tagged = flac.clone();
    let at = tagged
        .windows(9)
        .position(|w| w == b"reference" || w.starts_with(b"Lavf"))
        .expect("ffmpeg's FLAC has a vendor string");
    tagged[at - 4..at].copy_from_slice(&[0xff; 4]);
    let audio = decode(&tagged, 30).expect("the FLAC with a lying comment block");
    assert!((2.95..=3.15).contains(&audio.duration_secs()));
    let vorbis = &files().iter().find(|f| f.0 == "ogg-vorbis").unwrap().3;
    let mut tagged = vorbis.clone();
    let at = tagged.windows(7).rposition(|w| w == b"\x03vorbis").unwrap();
    tagged[at + 7..at + 11].copy_from_slice(&[0xff; 4]);
    match decode(&tagged, 30) {
        Err(AudioError::Corrupt(reason)) => assert!(reason.contains("comment header"), "{reason}"),
        other => panic!(
            "an Ogg comment header declaring 4 GB: {:?}",
            other.map(|a| a.duration_secs())
        ),
    }
    // An Ogg stream whose first packet says Opus but holds Vorbis pages, a
    // header of a container with nothing after it, and bytes of nothing.
    let vorbis = &files().iter().find(|f| f.0 == "ogg-vorbis").unwrap().3;
    let mut lying = vorbis.clone();
    if let Some(at) = lying.windows(7).position(|w| w == b"\x01vorbis") {
        lying[at..at + 8].copy_from_slice(b"OpusHead");
    }
    for (what, bytes) in [
        ("an Ogg stream that lies about its codec", lying),
        ("a bare fLaC marker", b"fLaC".to_vec()),
        (
            "an MP4 box header",
            b"\x00\x00\x00\x18ftypM4A \x00\x00\x02\x00".to_vec(),
        ),
        (
            "text",
            b"this is not audio at all, just some words".to_vec(),
        ),
    ] {
        assert!(decode(&bytes, 30).is_err(), "{what} decoded");
    }
}

/// A service with no engines: uploads are decoded before any engine is
/// asked, so a bad one is refused the same way.
fn engineless_service() -> &'static Service {
    static SERVICE: OnceLock<Service> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let empty = std::env::temp_dir().join(format!("vcs-uploads-svc-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let mut cfg = config(None, empty.clone(), empty);
        cfg.tts_engines.clear();
        cfg.stt_engines.clear();
        Service::start(cfg, None)
    })
}

#[tokio::test]
async fn through_the_api_each_bad_upload_is_a_400_naming_the_problem_and_the_service_keeps_serving()
{
    if !have_ffmpeg(
        "through_the_api_each_bad_upload_is_a_400_naming_the_problem_and_the_service_keeps_serving",
    ) {
        return;
    }
    let s = engineless_service();
    let webm = &files().iter().find(|f| f.0 == "webm").unwrap().3;
    for (what, bytes, content_type, says) in [
        (
            "a WebM cut in half",
            webm[..webm.len() / 2].to_vec(),
            "video/webm",
            "truncated",
        ),
        (
            "text",
            b"this is not audio".to_vec(),
            "audio/mpeg",
            "not a WAV, FLAC, MP3",
        ),
    ] {
        let response = client()
            .post(s.url("/api/v1/stt"))
            .bearer_auth(token("a"))
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["error"]["code"], "invalid_audio", "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(says), "{what}: {message}");
    }
    let live = client().get(s.url("/livez")).send().await.unwrap();
    assert_eq!(live.status(), 200, "still serving");
}
