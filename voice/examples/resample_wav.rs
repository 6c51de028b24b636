//! Resamples a WAV file to 16 kHz mono with the service's own audio path,
//! for comparing against other resamplers: resample_wav IN.wav OUT.wav
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = args.as_slice() else {
        eprintln!("usage: resample_wav IN.wav OUT.wav");
        std::process::exit(2);
    };
    let bytes = std::fs::read(input).expect("read input");
    let audio = voicechat_voice::audio::decode_wav(&bytes, u32::MAX).expect("decode");
    let samples = voicechat_voice::audio::resample(&audio, 16_000).expect("resample");
    let out = voicechat_voice::audio::Audio {
        samples,
        sample_rate: 16_000,
    };
    std::fs::write(output, voicechat_voice::audio::encode_wav(&out)).expect("write");
}
