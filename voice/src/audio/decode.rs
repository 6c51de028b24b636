//! Uploaded audio in the containers and codecs clients send, to mono f32:
//! WAV (`decode_wav`), and through Symphonia (pure Rust) FLAC, MP3, Ogg
//! and WebM/Matroska with Vorbis, MP4/M4A and ADTS with AAC; Opus in Ogg
//! or WebM (what browsers record) is decoded by libopus. The container is
//! found from the bytes, never from a file name. Audio past `max_secs` is
//! refused as soon as the header says so, else as soon as decoding passes
//! it: a header's claims are never allocated for.

use std::io::Cursor;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, CODEC_TYPE_OPUS, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader, Packet};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions, ReadOnlySource};
use symphonia::default::formats::{
    AdtsReader, FlacReader, IsoMp4Reader, MkvReader, MpaReader, OggReader,
};

use super::{Audio, AudioError, decode_wav};

/// Every container this decodes, for the error that says none matched.
pub const CONTAINERS: &str =
    "WAV, FLAC, MP3, Ogg (Opus, Vorbis), WebM/Matroska (Opus, Vorbis), MP4/M4A or ADTS (AAC)";
const OPUS_RATE: u32 = 48_000;

/// Decodes any supported upload to mono f32. Blocking (a minute of audio
/// takes tens of milliseconds): call it off the async threads.
pub fn decode(bytes: &[u8], max_secs: u32) -> Result<Audio, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE" {
        return decode_wav(bytes, max_secs);
    }
    // Symphonia's demuxers are not all panic-free on hostile input (its
    // Matroska reader panicked on a damaged WebM file here): a panic in
    // them is a refused upload, not a lost connection.
    std::panic::catch_unwind(|| decode_with_symphonia(bytes, max_secs)).unwrap_or_else(|_| {
        Err(AudioError::Corrupt(
            "the container is malformed (its demuxer gave up)".into(),
        ))
    })
}

fn decode_with_symphonia(bytes: &[u8], max_secs: u32) -> Result<Audio, AudioError> {
    let not_audio = || AudioError::NotAudio(format!("not a {CONTAINERS} file"));
    let (container, start) = sniff(bytes).ok_or_else(not_audio)?;
    let mut data = bytes[start..].to_vec();
    defuse_metadata(container, &mut data)?;
    // Matroska's reader jumps to wherever the file's SeekHead points and
    // reads an element there, past the check above (found by fuzzing); read
    // front to back it needs no seeking.
    let media: Box<dyn symphonia::core::io::MediaSource> = if container == Container::Matroska {
        Box::new(ReadOnlySource::new(Cursor::new(data)))
    } else {
        Box::new(Cursor::new(data))
    };
    let source = MediaSourceStream::new(media, MediaSourceStreamOptions::default());
    // The reader of the container the bytes begin with, not Symphonia's
    // probe, which scans the whole file for any marker it knows (a FLAC
    // header in the middle of an "MP3" would be read as FLAC, past the
    // checks above).
    let options = FormatOptions::default();
    let opened: Result<Box<dyn FormatReader>, SymphoniaError> = match container {
        Container::Flac => FlacReader::try_new(source, &options).map(|r| Box::new(r) as _),
        Container::Ogg => OggReader::try_new(source, &options).map(|r| Box::new(r) as _),
        Container::Mp4 => IsoMp4Reader::try_new(source, &options).map(|r| Box::new(r) as _),
        Container::Matroska => MkvReader::try_new(source, &options).map(|r| Box::new(r) as _),
        Container::Adts => AdtsReader::try_new(source, &options).map(|r| Box::new(r) as _),
        Container::Mpeg => MpaReader::try_new(source, &options).map(|r| Box::new(r) as _),
    };
    let mut format =
        opened.map_err(|e| AudioError::Corrupt(format!("the {container:?} container: {e}")))?;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| AudioError::NotAudio("the file has no audio track".into()))?
        .clone();
    let params = &track.codec_params;
    if params.codec == CODEC_TYPE_OPUS {
        let channels = params.channels.map_or(1, |c| c.count());
        return decode_opus(format.as_mut(), track.id, channels, max_secs);
    }
    let rate = params
        .sample_rate
        .ok_or_else(|| AudioError::Unsupported("the audio track has no sample rate".into()))?;
    check_rate(rate)?;
    if let Some(frames) = params.n_frames {
        let secs = frames as f64 / f64::from(rate);
        if secs > f64::from(max_secs) {
            return Err(AudioError::TooLong {
                secs,
                max: max_secs,
            });
        }
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(params, &DecoderOptions::default())
        .map_err(|e| AudioError::Unsupported(format!("the audio codec: {e}")))?;
    let max_frames = u64::from(max_secs) * u64::from(rate);
    let mut mono = Vec::new();
    let mut buffer: Option<SampleBuffer<f32>> = None;
    while let Some(packet) = next_packet(format.as_mut(), track.id)? {
        let decoded = decoder
            .decode(&packet)
            .map_err(|e| AudioError::Corrupt(format!("a frame does not decode: {e}")))?;
        let spec = *decoded.spec();
        if spec.rate != rate {
            return Err(AudioError::Corrupt(
                "the sample rate changes mid-stream".into(),
            ));
        }
        let channels = spec.channels.count().max(1);
        let capacity = decoded.capacity() as u64;
        let buf = match &mut buffer {
            Some(b) if b.capacity() >= decoded.capacity() * channels => b,
            _ => buffer.insert(SampleBuffer::new(capacity, spec)),
        };
        buf.copy_interleaved_ref(decoded);
        mix_into(&mut mono, buf.samples(), channels);
        if mono.len() as u64 > max_frames {
            return Err(too_long(mono.len(), rate, max_secs));
        }
    }
    finish(mono, rate, params.n_frames)
}

/// Opus packets, as Ogg and WebM demux them, through libopus at 48 kHz.
fn decode_opus(
    format: &mut dyn FormatReader,
    track: u32,
    channels: usize,
    max_secs: u32,
) -> Result<Audio, AudioError> {
    let layout = match channels {
        1 => opus::Channels::Mono,
        2 => opus::Channels::Stereo,
        n => {
            return Err(AudioError::Unsupported(format!(
                "Opus with {n} channels (mono and stereo are decoded)"
            )));
        }
    };
    let mut decoder = opus::Decoder::new(OPUS_RATE, layout)
        .map_err(|e| AudioError::Unsupported(format!("the Opus decoder: {e}")))?;
    let max_frames = u64::from(max_secs) * u64::from(OPUS_RATE);
    // 120 ms, the longest Opus packet.
    let mut pcm = vec![0f32; 5760 * channels];
    let mut mono = Vec::new();
    while let Some(packet) = next_packet(format, track)? {
        let frames = decoder
            .decode_float(&packet.data, &mut pcm, false)
            .map_err(|e| AudioError::Corrupt(format!("an Opus packet does not decode: {e}")))?;
        mix_into(&mut mono, &pcm[..frames * channels], channels);
        if mono.len() as u64 > max_frames {
            return Err(too_long(mono.len(), OPUS_RATE, max_secs));
        }
    }
    finish(mono, OPUS_RATE, None)
}

/// The track's next packet; `None` at the end of the stream.
fn next_packet(format: &mut dyn FormatReader, track: u32) -> Result<Option<Packet>, AudioError> {
    loop {
        match format.next_packet() {
            Ok(packet) if packet.track_id() == track => return Ok(Some(packet)),
            Ok(_) => {}
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(None);
            }
            Err(SymphoniaError::ResetRequired) => return Ok(None),
            Err(e) => return Err(AudioError::Corrupt(format!("the container: {e}"))),
        }
    }
}

fn mix_into(mono: &mut Vec<f32>, interleaved: &[f32], channels: usize) {
    mono.extend(interleaved.chunks(channels).map(|frame| {
        let sum: f32 = frame.iter().sum::<f32>() / channels as f32;
        if sum.is_finite() {
            sum.clamp(-1.0, 1.0)
        } else {
            0.0
        }
    }));
}

/// The decoded audio; one that stops well short of the length its header
/// declares is truncated.
fn finish(mono: Vec<f32>, rate: u32, declared: Option<u64>) -> Result<Audio, AudioError> {
    if mono.is_empty() {
        return Err(AudioError::Corrupt("no audio could be decoded".into()));
    }
    if let Some(declared) = declared
        && (mono.len() as u64) < declared * 9 / 10
    {
        return Err(AudioError::Corrupt(format!(
            "truncated: {:.1} s of the {:.1} s the header declares",
            mono.len() as f64 / f64::from(rate),
            declared as f64 / f64::from(rate)
        )));
    }
    Ok(Audio {
        samples: mono,
        sample_rate: rate,
    })
}

fn too_long(frames: usize, rate: u32, max_secs: u32) -> AudioError {
    AudioError::TooLong {
        secs: frames as f64 / f64::from(rate),
        max: max_secs,
    }
}

fn check_rate(rate: u32) -> Result<(), AudioError> {
    if (1000..=384_000).contains(&rate) {
        Ok(())
    } else {
        Err(AudioError::Unsupported(format!(
            "a sample rate of {rate} Hz"
        )))
    }
}

/// Symphonia 0.5 allocates a Vorbis comment's length as the file declares
/// it, before reading (found by the `audio_decode` fuzz target: 10 kB of
/// FLAC asked for 4 GB). Speech needs no tags: FLAC's comment, cue sheet
/// and picture blocks become padding, which is skipped; an Ogg stream whose
/// comment header declares more bytes than it holds is refused.
fn defuse_metadata(container: Container, bytes: &mut [u8]) -> Result<(), AudioError> {
    match container {
        Container::Flac => flac_tags_to_padding(bytes),
        Container::Ogg => check_ogg_comment_header(bytes)?,
        Container::Mp4 => check_mp4_tables(bytes, 0, bytes.len() as u64)?,
        Container::Matroska => check_ebml(bytes, 0)?,
        Container::Adts | Container::Mpeg => {}
    }
    Ok(())
}

/// Matroska/WebM master elements (their data is more elements): the ones
/// Symphonia 0.5's reader parses as such (`element_ids.rs`), no more (an
/// attachment's bytes are not elements).
const EBML_MASTERS: [u32; 30] = [
    0x1A45DFA3, 0x18538067, 0x114D9B74, 0x4DBB, 0x1549A966, 0x1F43B675, 0xA0, 0x75A1, 0xA6,
    0x1654AE6B, 0xAE, 0xE0, 0xE1, 0x6D80, 0x6240, 0x5035, 0x47E7, 0x55B0, 0x55D0, 0x1C53BB6B, 0xBB,
    0xB7, 0x1043A770, 0x45B9, 0xB6, 0x80, 0x1254C367, 0x7373, 0x63C0, 0x67C8,
];

/// Symphonia 0.5 reserves an element's declared size before reading it
/// (366 GB for a string, found by fuzzing): every element must fit in its
/// parent. An unknown size (a live recording's segment and clusters, the
/// only elements that may have one) runs to the parent's end.
fn check_ebml(bytes: &[u8], depth: usize) -> Result<(), AudioError> {
    let lies = || {
        AudioError::Corrupt(
            "the Matroska file is truncated or an element declares more than it holds".into(),
        )
    };
    let mut at = 0;
    while at < bytes.len() {
        let (id, id_len) = ebml_vint(&bytes[at..], true).ok_or_else(lies)?;
        let (size, size_len) = ebml_vint(&bytes[at + id_len..], false).ok_or_else(lies)?;
        let data = at + id_len + size_len;
        let room = bytes.len().checked_sub(data).ok_or_else(lies)?;
        // Only a segment and its clusters may leave their size open.
        let unknown = size == (1u64 << (7 * size_len)) - 1;
        if unknown && !matches!(id, 0x1853_8067 | 0x1F43_B675) {
            return Err(lies());
        }
        let len = if unknown {
            room
        } else {
            usize::try_from(size)
                .ok()
                .filter(|&n| n <= room)
                .ok_or_else(lies)?
        };
        if EBML_MASTERS.contains(&(id as u32)) && depth < 32 {
            check_ebml(&bytes[data..data + len], depth + 1)?;
        }
        at = data + len;
    }
    Ok(())
}

/// An EBML variable-length integer: its value (with the length marker for
/// IDs, without it for sizes) and its length in bytes.
fn ebml_vint(bytes: &[u8], keep_marker: bool) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || bytes.len() < len {
        return None;
    }
    let mut value = if keep_marker {
        u64::from(first)
    } else {
        u64::from(first) & ((1u64 << (8 - len)) - 1)
    };
    for b in &bytes[1..len] {
        value = (value << 8) | u64::from(*b);
    }
    Some((value, len))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Flac,
    Ogg,
    Mp4,
    Matroska,
    Adts,
    Mpeg,
}

/// The container the bytes begin with, and where it starts (after an
/// ID3v2 tag, which MP3 and some FLAC files carry; its contents are not
/// read).
fn sniff(bytes: &[u8]) -> Option<(Container, usize)> {
    let mut start = 0;
    if bytes.starts_with(b"ID3") && bytes.len() >= 10 {
        let size = bytes[6..10]
            .iter()
            .fold(0usize, |n, b| (n << 7) | usize::from(b & 0x7f));
        let footer = if bytes[5] & 0x10 != 0 { 10 } else { 0 };
        start = 10 + size + footer;
    }
    let at = bytes.get(start..)?;
    let container = if at.starts_with(b"fLaC") {
        Container::Flac
    } else if start > 0 {
        // After an ID3 tag: FLAC, else MPEG audio frames.
        Container::Mpeg
    } else if at.starts_with(b"OggS") {
        Container::Ogg
    } else if at.get(4..8) == Some(b"ftyp") {
        Container::Mp4
    } else if at.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        Container::Matroska
    } else if at.len() >= 2 && at[0] == 0xff && at[1] & 0xf6 == 0xf0 {
        Container::Adts
    } else if at.len() >= 2 && at[0] == 0xff && at[1] & 0xe0 == 0xe0 {
        Container::Mpeg
    } else {
        return None;
    };
    Some((container, start))
}

/// MP4 boxes the sample tables are in.
const MP4_CONTAINERS: [&[u8; 4]; 10] = [
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"moof", b"traf", b"mvex", b"dinf",
];

/// MP4's tables say how many entries they hold, and Symphonia 0.5 reserves
/// that many before reading them (`stts` declaring 4 billion entries asked
/// for 34 GB, found by fuzzing): each table must hold what it declares, and
/// each box must fit in its parent, and no sample may be larger than the
/// file.
fn check_mp4_tables(bytes: &[u8], depth: usize, file_len: u64) -> Result<(), AudioError> {
    let lies =
        |what: &str| AudioError::Corrupt(format!("the MP4 {what} declares more than it holds"));
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let size32 =
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as u64;
        let kind: [u8; 4] = [bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]];
        let (header, size) = match size32 {
            0 => (8, (bytes.len() - at) as u64),
            1 => {
                let big = bytes.get(at + 8..at + 16).ok_or_else(|| lies("box"))?;
                (
                    16,
                    u64::from_be_bytes([
                        big[0], big[1], big[2], big[3], big[4], big[5], big[6], big[7],
                    ]),
                )
            }
            n => (8, n),
        };
        if size < header as u64 {
            return Err(lies("box"));
        }
        // Only the media data may run past the end (a truncated file, which
        // the demuxer reports): Symphonia sizes what it reads of the other
        // boxes by their declared size (an `hdlr` declaring 4 GB).
        if size > (bytes.len() - at) as u64 {
            if &kind == b"mdat" {
                return Ok(());
            }
            return Err(lies(&format!("{} box", String::from_utf8_lossy(&kind))));
        }
        let body = &bytes[at + header..at + size as usize];
        let kind_str = String::from_utf8_lossy(&kind).into_owned();
        if MP4_CONTAINERS.contains(&&kind) && depth < 16 {
            check_mp4_tables(body, depth + 1, file_len)?;
        }
        // Full boxes: version and flags, then the entry count.
        let entry = match &kind {
            b"stts" | b"ctts" | b"co64" => Some((4, 8)),
            b"stsc" => Some((4, 12)),
            b"stco" | b"stss" => Some((4, 4)),
            b"stsz" => {
                // A fixed sample size means no table.
                let fixed = body.get(4..8).is_some_and(|s| s != [0, 0, 0, 0]);
                (!fixed).then_some((8, 4))
            }
            b"elst" => Some((4, if body.first() == Some(&1) { 20 } else { 12 })),
            _ => None,
        };
        // A sample is read whole, sized as `stsz` says: none past the file.
        if &kind == b"stsz" {
            let word = |i: usize| {
                body.get(i..i + 4)
                    .map(|w| u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]])))
            };
            let fixed = word(4).unwrap_or(0);
            let count = if fixed == 0 { word(8).unwrap_or(0) } else { 0 };
            let too_big = fixed > file_len
                || (0..count.min(body.len() as u64 / 4))
                    .any(|i| word(12 + 4 * i as usize).is_some_and(|n| n > file_len));
            if too_big {
                return Err(lies("sample size table"));
            }
        }
        if let Some((count_at, entry_size)) = entry {
            let count = body
                .get(count_at..count_at + 4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64)
                .ok_or_else(|| lies(&kind_str))?;
            let room = (body.len() - (count_at + 4).min(body.len())) as u64;
            if count.saturating_mul(entry_size) > room {
                return Err(lies(&format!("{kind_str} table")));
            }
        }
        at += size as usize;
    }
    Ok(())
}

const FLAC_PADDING: u8 = 1;
const FLAC_TAG_BLOCKS: [u8; 3] = [4, 5, 6]; // comment, cue sheet, picture

fn flac_tags_to_padding(bytes: &mut [u8]) {
    let mut at = 4;
    while at + 4 <= bytes.len() {
        let header = bytes[at];
        if FLAC_TAG_BLOCKS.contains(&(header & 0x7f)) {
            bytes[at] = (header & 0x80) | FLAC_PADDING;
        }
        let len = u32::from_be_bytes([0, bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        if header & 0x80 != 0 {
            return;
        }
        at += 4 + len;
    }
}

/// The first logical stream's second packet (its comment header), checked:
/// each length it declares must fit in what is left of it.
fn check_ogg_comment_header(bytes: &[u8]) -> Result<(), AudioError> {
    let Some(packet) = ogg_packet(bytes, 1) else {
        return Ok(());
    };
    let body = if let Some(rest) = packet.strip_prefix(b"OpusTags") {
        rest
    } else if let Some(rest) = packet.strip_prefix(b"\x03vorbis") {
        rest
    } else {
        return Ok(());
    };
    let lies =
        || AudioError::Corrupt("the Ogg comment header declares more bytes than it holds".into());
    let mut rest = body;
    let take_u32 = |rest: &mut &[u8]| -> Result<usize, AudioError> {
        let (head, tail) = rest.split_at_checked(4).ok_or_else(lies)?;
        *rest = tail;
        Ok(u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize)
    };
    let vendor = take_u32(&mut rest)?;
    rest = rest.get(vendor..).ok_or_else(lies)?;
    let comments = take_u32(&mut rest)?;
    for _ in 0..comments {
        let len = take_u32(&mut rest)?;
        rest = rest.get(len..).ok_or_else(lies)?;
    }
    Ok(())
}

/// Packet `index` of the first logical stream, from its pages (at most
/// the file's bytes: pages only point within it).
fn ogg_packet(bytes: &[u8], index: usize) -> Option<Vec<u8>> {
    let serial = bytes.get(14..18)?;
    let mut packet = Vec::new();
    let mut found = 0;
    let mut at = 0;
    while bytes.get(at..at + 4)? == b"OggS" {
        let segments = usize::from(*bytes.get(at + 26)?);
        let table = bytes.get(at + 27..at + 27 + segments)?;
        let mut data = at + 27 + segments;
        let same_stream = bytes.get(at + 14..at + 18)? == serial;
        for &lace in table {
            let piece = bytes.get(data..data + usize::from(lace))?;
            data += usize::from(lace);
            if !same_stream {
                continue;
            }
            if found == index {
                packet.extend_from_slice(piece);
            }
            if lace < 255 {
                if found == index {
                    return Some(packet);
                }
                found += 1;
            }
        }
        at = data;
    }
    None
}
