//! Opus through libopus (the `opus` crate, libopus built from source into
//! the binary), in an Ogg stream as RFC 7845 lays it out: an `OpusHead`
//! page, an `OpusTags` page, then 20 ms packets whose granule positions
//! count 48 kHz samples from the start, encoder delay (pre-skip) included.

use ogg::writing::{PacketWriteEndInfo, PacketWriter};

use super::{EncodeError, to_i16};
use crate::audio::Audio;

/// Opus runs at 48 kHz; the audio is resampled to it first.
pub const SAMPLE_RATE: u32 = 48_000;
const FRAME: usize = 960; // 20 ms
const BITRATE: i32 = 32_000;
const MAX_PACKET: usize = 4000;
const SERIAL: u32 = 0x766f_6963; // "voic"

pub fn encode(audio: &Audio, original_rate: u32) -> Result<Vec<u8>, EncodeError> {
    let fail = |reason: String| EncodeError::Encoder {
        format: "opus",
        reason,
    };
    let mut encoder =
        opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Audio)
            .map_err(|e| fail(e.to_string()))?;
    encoder
        .set_bitrate(opus::Bitrate::Bits(BITRATE))
        .map_err(|e| fail(e.to_string()))?;
    let pre_skip = encoder.get_lookahead().map_err(|e| fail(e.to_string()))?;
    let pre_skip = u16::try_from(pre_skip).map_err(|_| fail(format!("lookahead {pre_skip}")))?;

    let mut writer = PacketWriter::new(Vec::new());
    let mut head = Vec::with_capacity(19);
    head.extend_from_slice(b"OpusHead");
    head.push(1); // version
    head.push(1); // channels
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&original_rate.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(0); // mapping family: mono/stereo
    let io = |e: std::io::Error| fail(e.to_string());
    writer
        .write_packet(head, SERIAL, PacketWriteEndInfo::EndPage, 0)
        .map_err(io)?;
    let vendor = concat!("voicechat ", env!("CARGO_PKG_VERSION"));
    let mut tags = Vec::new();
    tags.extend_from_slice(b"OpusTags");
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor.as_bytes());
    tags.extend_from_slice(&0u32.to_le_bytes()); // no comments
    writer
        .write_packet(tags, SERIAL, PacketWriteEndInfo::EndPage, 0)
        .map_err(io)?;

    let mut pcm = to_i16(&audio.samples);
    let total = pcm.len() as u64;
    // Whole frames, enough for the encoder's delay to come out too, and at
    // least one: the last is padded with silence (the granule position of
    // the last page cuts the decoded stream back to `total`).
    let frames = (pcm.len() + usize::from(pre_skip)).div_ceil(FRAME).max(1);
    pcm.resize(frames * FRAME, 0);
    for (i, frame) in pcm.chunks(FRAME).enumerate() {
        let packet = encoder
            .encode_vec(frame, MAX_PACKET)
            .map_err(|e| fail(e.to_string()))?;
        let last = i + 1 == frames;
        let granule = if last {
            u64::from(pre_skip) + total
        } else {
            u64::from(pre_skip) + ((i + 1) * FRAME) as u64
        };
        let end = if last {
            PacketWriteEndInfo::EndStream
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        writer
            .write_packet(packet, SERIAL, end, granule)
            .map_err(io)?;
    }
    Ok(writer.into_inner())
}
