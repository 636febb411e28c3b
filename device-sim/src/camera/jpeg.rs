//! The snapshot: a baseline JPEG (SOF0, YCbCr 4:2:0, quality 80, as IP cameras send) of the
//! camera's scene ([`picture`](super::picture)), 640×360 unless the camera is given another
//! size.
//!
//! Encoding a picture per request would cost a 1,000-camera fleet a core, so each (scene,
//! size) is encoded once, lazily, as [`FRAMES`] frames of their own sensor noise, kept for the
//! process and shared by every camera; requests take them in rotation. Every served picture
//! still differs from the one before, as a live camera's does: a comment (COM) segment after
//! SOI and the JFIF APP0 carries the request's counter — unless the camera is "frozen", which
//! serves the same counter and so the same bytes. A camera given `picture_bytes` gets its
//! picture padded to that size with APP15 segments of noise (which decoders skip) between APP0
//! and the comment.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use jpeg_encoder::{ColorType, Encoder, EncodingError, SamplingFactor};
use tokio::sync::Notify;

use super::picture::{self, Scene};

/// Frames encoded per (scene, size), served in rotation.
pub(crate) const FRAMES: usize = 8;
/// The JPEG quality (1–100) of every picture.
const QUALITY: u8 = 80;
/// The snapshot's size unless the camera is given another: 640×360.
pub const DEFAULT_SIZE: (u16, u16) = (640, 360);
/// The smallest and largest width or height a camera's picture may have.
pub const MIN_SIDE: u16 = 16;
pub const MAX_SIDE: u16 = 4096;

/// One encoded frame and where its per-request segments go (after SOI and APP0).
struct Encoded {
    bytes: Vec<u8>,
    head: usize,
}

/// The frames of one (scene, size).
pub(crate) struct Frames {
    frames: Vec<Encoded>,
}

/// What the cache holds per (scene, width, height): built once, or why not.
type Built = Result<Arc<Frames>, Arc<EncodingError>>;
type Key = (Scene, u16, u16);

/// A key's frames, set once, and how async requests wait for them.
#[derive(Default)]
struct Slot {
    built: OnceLock<Built>,
    /// Whether a blocking task has been started to build them.
    started: AtomicBool,
    ready: Notify,
}

fn slot(key: Key) -> Arc<Slot> {
    static SLOTS: OnceLock<Mutex<HashMap<Key, Arc<Slot>>>> = OnceLock::new();
    // A panic while holding this short lock leaves a plain map behind; keep serving.
    let mut map = SLOTS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    map.entry(key).or_default().clone()
}

/// The frames of `scene` at `width × height`: encoded on the first call, on this thread (a
/// concurrent call for the same key waits for it), and shared afterwards.
pub(crate) fn frames_blocking(scene: Scene, width: u16, height: u16) -> Built {
    slot((scene, width, height)).built.get_or_init(|| encode_all(scene, width, height)).clone()
}

/// [`frames_blocking`] for async callers: the cached frames at once; else one task on the
/// blocking pool encodes them — to the end, even if every request that waits for it gives up
/// (a client's deadline may be shorter than the encoding) — while the requests wait without
/// holding a runtime thread.
pub(crate) async fn frames(scene: Scene, width: u16, height: u16) -> Built {
    let slot = slot((scene, width, height));
    loop {
        let ready = slot.ready.notified();
        tokio::pin!(ready);
        ready.as_mut().enable();
        if let Some(built) = slot.built.get() {
            return built.clone();
        }
        if !slot.started.swap(true, Ordering::AcqRel) {
            let started = Started(slot.clone());
            tokio::task::spawn_blocking(move || {
                started.0.built.get_or_init(|| encode_all(scene, width, height));
            });
        }
        ready.await;
    }
}

/// The build a blocking task owns: when the task ends, or is dropped unrun (its runtime shut
/// down), the waiters wake — to the frames, or to start another build.
struct Started(Arc<Slot>);

impl Drop for Started {
    fn drop(&mut self) {
        if self.0.built.get().is_none() {
            self.0.started.store(false, Ordering::Release);
        }
        self.0.ready.notify_waiters();
    }
}

fn encode_all(scene: Scene, width: u16, height: u16) -> Built {
    let mut frames = Vec::with_capacity(FRAMES);
    let mut failed = None;
    picture::frames(scene, usize::from(width), usize::from(height), FRAMES, |ycc| {
        if failed.is_none() {
            match encode(ycc, width, height) {
                Ok(e) => frames.push(e),
                Err(e) => failed = Some(e),
            }
        }
    });
    match failed {
        Some(e) => Err(Arc::new(e)),
        None => Ok(Arc::new(Frames { frames })),
    }
}

/// `n` freshly made frames of `scene` (each its own noise, none from the cache), handed to
/// `each` as JPEG bytes: for long runs of distinct pictures (false-alarm measurements).
pub(crate) fn fresh(scene: Scene, width: u16, height: u16, n: usize, mut each: impl FnMut(&[u8])) {
    picture::frames(scene, usize::from(width), usize::from(height), n, |ycc| {
        if let Ok(e) = encode(ycc, width, height) {
            each(&e.bytes);
        }
    });
}

fn encode(ycc: &[u8], width: u16, height: u16) -> Result<Encoded, EncodingError> {
    let mut bytes = Vec::with_capacity(ycc.len() / 6);
    let mut enc = Encoder::new(&mut bytes, QUALITY);
    enc.set_sampling_factor(SamplingFactor::F_2_2);
    enc.set_progressive(false);
    enc.encode(ycc, width, height, ColorType::Ycbcr)?;
    let head = head_len(&bytes);
    Ok(Encoded { bytes, head })
}

/// SOI, and the APP0 (JFIF) segment right after it when there is one.
fn head_len(b: &[u8]) -> usize {
    match b {
        [0xFF, 0xD8, 0xFF, 0xE0, hi, lo, ..] => (4 + usize::from(u16::from_be_bytes([*hi, *lo]))).min(b.len()),
        _ => 2.min(b.len()),
    }
}

/// Payload of one padding segment (APP15, which decoders skip): the most one segment holds.
const PAD_SEGMENT: usize = 65_533;

/// Noise shared by every padded picture (made once): random bytes barely compress, as a real
/// camera's JPEG data does not.
fn noise() -> &'static [u8] {
    static NOISE: OnceLock<Vec<u8>> = OnceLock::new();
    NOISE.get_or_init(|| {
        // xorshift64*: fixed seed, the same padding on every run.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..PAD_SEGMENT)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    })
}

impl Frames {
    /// The picture for request number `counter`: frame `counter mod` [`FRAMES`] with a COM
    /// segment carrying the counter, padded to `size` bytes with APP15 segments of noise when
    /// `size` is larger than the picture itself (0: no padding).
    pub(crate) fn serve(&self, counter: u64, size: usize) -> Vec<u8> {
        let Some(frame) = self.frames.get((counter % self.frames.len().max(1) as u64) as usize) else {
            return Vec::new();
        };
        let comment = format!("bsg-sim frame {counter:020}");
        let com_len = u16::try_from(comment.len() + 2).unwrap_or(u16::MAX);
        let plain = frame.bytes.len() + 4 + comment.len();
        let mut out = Vec::with_capacity(plain.max(size));
        let (head, rest) = frame.bytes.split_at(frame.head);
        out.extend_from_slice(head);
        if size > plain + 4 {
            pad(&mut out, size - plain, counter);
        }
        out.extend_from_slice(&[0xFF, 0xFE]);
        out.extend_from_slice(&com_len.to_be_bytes());
        out.extend_from_slice(comment.as_bytes());
        out.extend_from_slice(rest);
        out
    }
}

/// Appends APP15 segments of noise, `left` bytes in all (at least 4), the noise starting at a
/// place that depends on `counter`.
fn pad(out: &mut Vec<u8>, mut left: usize, counter: u64) {
    let noise = noise();
    while left >= 4 {
        let mut n = (left - 4).min(PAD_SEGMENT);
        if (1..4).contains(&(left - 4 - n)) {
            // Too little would be left for a segment of its own: leave it more.
            n -= 4;
        }
        let len = u16::try_from(n + 2).unwrap_or(u16::MAX);
        out.extend_from_slice(&[0xFF, 0xEF]);
        out.extend_from_slice(&len.to_be_bytes());
        let offset = (counter as usize).wrapping_mul(7919) % PAD_SEGMENT;
        let first = n.min(PAD_SEGMENT - offset);
        out.extend_from_slice(&noise[offset..offset + first]);
        out.extend_from_slice(&noise[..n - first]);
        left -= n + 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames() -> Arc<Frames> {
        frames_blocking(Scene::Normal, DEFAULT_SIZE.0, DEFAULT_SIZE.1).unwrap()
    }

    /// Every segment before the scan is well formed (marker, length, payload); the markers in
    /// order.
    fn markers(a: &[u8]) -> Vec<u8> {
        assert_eq!(&a[..2], &[0xFF, 0xD8]);
        assert_eq!(&a[a.len() - 2..], &[0xFF, 0xD9]);
        let mut i = 2;
        let mut out = Vec::new();
        loop {
            assert_eq!(a[i], 0xFF, "marker at {i}");
            out.push(a[i + 1]);
            if a[i + 1] == 0xDA {
                return out;
            }
            i += 2 + usize::from(u16::from_be_bytes([a[i + 2], a[i + 3]]));
        }
    }

    #[test]
    fn frames_differ_and_are_framed() {
        let f = frames();
        let a = f.serve(1, 0);
        let b = f.serve(2, 0);
        assert_ne!(a, b);
        assert_eq!(f.serve(7, 0), f.serve(7, 0));
        // The counter's comment right after SOI and APP0; then baseline tables and the scan.
        let m = markers(&a);
        assert_eq!(&m[..2], &[0xE0, 0xFE], "{m:x?}");
        assert!(m.contains(&0xC0) && !m.contains(&0xC2), "baseline: {m:x?}");
        // The same frame comes back after a round, with another counter.
        let (c, d) = (f.serve(3, 0), f.serve(3 + FRAMES as u64, 0));
        assert_eq!(c.len(), d.len());
        assert_ne!(c, d);
    }

    #[test]
    fn scene_frames_are_the_served_pictures() {
        assert_eq!(picture::scene_frame(Scene::Normal, 640, 360, 5), frames().serve(5, 0));
        assert!(picture::scene_frame(Scene::Normal, 8, 360, 0).is_empty());
        assert!(picture::scene_frame(Scene::Covered, 640, MAX_SIDE + 1, 0).is_empty());
    }

    #[test]
    fn padded_frames_have_their_size_and_stay_framed() {
        let f = frames();
        let plain = f.serve(3, 0).len();
        for size in [0, 100, plain, plain + 3, plain + 4, plain + 5, plain + 9, 150_000, 600_000, 2_000_000] {
            let a = f.serve(3, size);
            let b = f.serve(4, size);
            assert_ne!(a, b);
            if size <= plain + 4 {
                assert_eq!(a, f.serve(3, 0), "{size}");
            } else {
                assert_eq!(a.len(), size, "{size}");
            }
            let m = markers(&a);
            assert_eq!(m[0], 0xE0);
            assert_eq!(m.iter().filter(|&&x| x == 0xFE).count(), 1, "{size}: one comment");
        }
    }

    /// What the pictures cost: one frame's size and the time to build a (scene, size)'s frames.
    /// `cargo test --release -p device-sim --lib picture_cost -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement; run it in a release build"]
    fn picture_cost() {
        for (w, h) in [DEFAULT_SIZE, (1920, 1080)] {
            for scene in [Scene::Normal, Scene::Covered, Scene::Dark, Scene::Blurred] {
                let t = std::time::Instant::now();
                let f = frames_blocking(scene, w, h).unwrap();
                let took = t.elapsed();
                let sizes: Vec<usize> = (0..FRAMES as u64).map(|k| f.serve(k, 0).len()).collect();
                eprintln!("{scene:?} {w}x{h}: {FRAMES} frames built in {took:.0?}, {sizes:?} bytes");
            }
        }
    }
}
