//! A tiny WAV writer for test audio (sine tones) and a reader for what a
//! softphone recorded.

use std::fs;
use std::io;
use std::path::Path;

/// Write `seconds` of a `freq` Hz sine as 16-bit mono PCM at `rate` Hz.
pub fn write_sine(path: &Path, rate: u32, freq: f64, seconds: f64) -> io::Result<()> {
    let n = (f64::from(rate) * seconds) as u32;
    let mut data = Vec::with_capacity(n as usize * 2);
    for i in 0..n {
        let t = f64::from(i) / f64::from(rate);
        let s = (t * freq * std::f64::consts::TAU).sin() * 0.5 * f64::from(i16::MAX);
        data.extend_from_slice(&(s as i16).to_le_bytes());
    }
    fs::write(path, wav_bytes(rate, &data))
}

fn wav_bytes(rate: u32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(44 + data.len());
    let data_len = data.len() as u32;
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data_len).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes()); // PCM
    v.extend_from_slice(&1u16.to_le_bytes()); // mono
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * 2).to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    v.extend_from_slice(data);
    v
}

/// Samples of a 16-bit PCM WAV (the `data` chunk, wherever it is).
pub fn read_pcm16(path: &Path) -> io::Result<Vec<i16>> {
    let b = fs::read(path)?;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "not a RIFF/WAVE file");
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return Err(bad());
    }
    let mut i = 12;
    while i + 8 <= b.len() {
        let id = &b[i..i + 4];
        let len = u32::from_le_bytes([b[i + 4], b[i + 5], b[i + 6], b[i + 7]]) as usize;
        let body = i + 8;
        if id == b"data" {
            let end = (body + len).min(b.len());
            return Ok(b[body..end]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect());
        }
        i = body + len + (len & 1);
    }
    Err(bad())
}

/// Number of samples louder than `threshold` (a crude "was there sound").
pub fn loud_samples(samples: &[i16], threshold: i16) -> usize {
    samples
        .iter()
        .filter(|s| s.unsigned_abs() > threshold.unsigned_abs())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_round_trips() {
        let dir = crate::TempDir::new("wav");
        let p = dir.join("s.wav");
        write_sine(&p, 8000, 440.0, 0.5).unwrap();
        let s = read_pcm16(&p).unwrap();
        assert_eq!(s.len(), 4000);
        assert!(loud_samples(&s, 8000) > 1000);
    }
}
