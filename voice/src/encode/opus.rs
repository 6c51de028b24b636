//! Opus through libopus (the `opus` crate, libopus built from source into
//! the binary), in an Ogg stream as RFC 7845 lays it out: an `OpusHead`
//! page, an `OpusTags` page, then 20 ms packets whose granule positions
//! count 48 kHz samples from the start, encoder delay (pre-skip) included.
//! Fed chunk by chunk; each chunk's packets end on a page of their own, so
//! a streamed answer sends them as soon as they are encoded.

use ogg::writing::{PacketWriteEndInfo, PacketWriter};

use super::{EncodeError, to_i16};

/// Opus runs at 48 kHz; the audio is resampled to it first.
pub const SAMPLE_RATE: u32 = 48_000;
const FRAME: usize = 960; // 20 ms
const BITRATE: i32 = 32_000;
const MAX_PACKET: usize = 4000;
const SERIAL: u32 = 0x766f_6963; // "voic"

fn fail(reason: String) -> EncodeError {
    EncodeError::Encoder {
        format: "opus",
        reason,
    }
}

pub struct OpusStream {
    encoder: opus::Encoder,
    writer: PacketWriter<'static, Vec<u8>>,
    pre_skip: u16,
    /// Samples pushed but not yet a whole frame.
    pending: Vec<i16>,
    /// 48 kHz samples pushed in all, and frames encoded.
    pushed: u64,
    frames: u64,
}

impl OpusStream {
    /// `original_rate` goes in the header (what the audio was made at).
    pub fn new(original_rate: u32) -> Result<Self, EncodeError> {
        let mut encoder =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Audio)
                .map_err(|e| fail(e.to_string()))?;
        encoder
            .set_bitrate(opus::Bitrate::Bits(BITRATE))
            .map_err(|e| fail(e.to_string()))?;
        let lookahead = encoder.get_lookahead().map_err(|e| fail(e.to_string()))?;
        let pre_skip =
            u16::try_from(lookahead).map_err(|_| fail(format!("lookahead {lookahead}")))?;
        let mut stream = Self {
            encoder,
            writer: PacketWriter::new(Vec::new()),
            pre_skip,
            pending: Vec::new(),
            pushed: 0,
            frames: 0,
        };
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1); // version
        head.push(1); // channels
        head.extend_from_slice(&pre_skip.to_le_bytes());
        head.extend_from_slice(&original_rate.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes()); // output gain
        head.push(0); // mapping family: mono/stereo
        stream.write(head, PacketWriteEndInfo::EndPage, 0)?;
        let vendor = concat!("voicechat ", env!("CARGO_PKG_VERSION"));
        let mut tags = Vec::new();
        tags.extend_from_slice(b"OpusTags");
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor.as_bytes());
        tags.extend_from_slice(&0u32.to_le_bytes()); // no comments
        stream.write(tags, PacketWriteEndInfo::EndPage, 0)?;
        Ok(stream)
    }

    /// Encodes the whole frames `samples` (at 48 kHz) complete; returns
    /// the pages made, the headers with the first chunk.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>, EncodeError> {
        self.pending.extend(to_i16(samples));
        self.pushed += samples.len() as u64;
        let whole = self.pending.len() / FRAME;
        let frames: Vec<i16> = self.pending.drain(..whole * FRAME).collect();
        for (i, frame) in frames.chunks(FRAME).enumerate() {
            let end = if i + 1 == whole {
                PacketWriteEndInfo::EndPage
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            self.encode_frame(frame, end)?;
        }
        Ok(self.take())
    }

    /// The rest, padded to whole frames (and past the encoder's delay, so
    /// that it all comes out); the last page's granule position cuts the
    /// decoded stream back to what was pushed.
    pub fn finish(&mut self) -> Result<Vec<u8>, EncodeError> {
        let total = u64::from(self.pre_skip) + self.pushed;
        let mut rest = std::mem::take(&mut self.pending);
        let needed = (total - self.frames * FRAME as u64)
            .div_ceil(FRAME as u64)
            .max(1) as usize;
        rest.resize(needed * FRAME, 0);
        for (i, frame) in rest.chunks(FRAME).enumerate() {
            let last = i + 1 == needed;
            let packet = self
                .encoder
                .encode_vec(frame, MAX_PACKET)
                .map_err(|e| fail(e.to_string()))?;
            self.frames += 1;
            let granule = if last {
                total
            } else {
                (self.frames * FRAME as u64).min(total)
            };
            let end = if last {
                PacketWriteEndInfo::EndStream
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            self.write(packet, end, granule)?;
        }
        Ok(self.take())
    }

    fn encode_frame(&mut self, frame: &[i16], end: PacketWriteEndInfo) -> Result<(), EncodeError> {
        let packet = self
            .encoder
            .encode_vec(frame, MAX_PACKET)
            .map_err(|e| fail(e.to_string()))?;
        self.frames += 1;
        let granule = self.frames * FRAME as u64;
        self.write(packet, end, granule)
    }

    fn write(
        &mut self,
        packet: Vec<u8>,
        end: PacketWriteEndInfo,
        granule: u64,
    ) -> Result<(), EncodeError> {
        self.writer
            .write_packet(packet, SERIAL, end, granule)
            .map_err(|e| fail(e.to_string()))
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::take(self.writer.inner_mut())
    }
}
