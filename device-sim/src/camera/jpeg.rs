//! The snapshot picture: a valid 8×8 grey baseline JPEG with a comment (COM) segment that
//! carries a counter, so the bytes change on every request — as a live camera's would —
//! unless the camera is "frozen". Built once by hand (DC-only scan, one-code Huffman tables)
//! so the simulator needs no image library.

const HEAD: &[u8] = &[
    0xFF, 0xD8, // SOI
    0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
];

fn tail() -> Vec<u8> {
    let mut t = Vec::with_capacity(140);
    t.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x43, 0x00]); // DQT, table 0, all ones
    t.extend_from_slice(&[1u8; 64]);
    t.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x08, 0x00, 0x08, 0x01, 0x01, 0x11, 0x00]); // SOF0 8×8, 1 comp
    for class in [0x00u8, 0x10] {
        // DHT: one 1-bit code for symbol 0 (DC "no difference" / AC "end of block").
        t.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x14, class, 0x01]);
        t.extend_from_slice(&[0u8; 15]);
        t.push(0x00);
    }
    t.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]); // SOS
    t.push(0x3F); // bits "00" (DC 0, EOB) padded with ones
    t.extend_from_slice(&[0xFF, 0xD9]); // EOI
    t
}

/// The JPEG for frame number `counter`.
pub fn frame(counter: u64) -> Vec<u8> {
    let comment = format!("bsg-sim frame {counter:020}");
    let len = u16::try_from(comment.len() + 2).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(200);
    out.extend_from_slice(HEAD);
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(comment.as_bytes());
    out.extend_from_slice(&tail());
    out
}

/// Noise shared by every padded picture (made once): random bytes barely compress, as a real
/// camera's JPEG data does not.
fn noise() -> &'static [u8] {
    static NOISE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    NOISE.get_or_init(|| {
        // xorshift64*: fixed seed, the same picture on every run.
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

/// Payload of one padding segment (APP15, which decoders skip): the most one segment holds.
const PAD_SEGMENT: usize = 65_533;

/// The JPEG for frame `counter`, padded to `size` bytes with APP15 segments of noise when
/// `size` is larger than the plain picture (about 200 bytes); the counter still makes every
/// frame differ.
pub fn frame_of_size(counter: u64, size: usize) -> Vec<u8> {
    let plain = frame(counter);
    if size <= plain.len() + 4 {
        return plain;
    }
    let mut out = Vec::with_capacity(size);
    // SOI and APP0 first, then the padding, then the rest of the picture.
    let (head, rest) = plain.split_at(HEAD.len());
    out.extend_from_slice(head);
    let mut left = size - plain.len();
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
        let noise = noise();
        let first = n.min(PAD_SEGMENT - offset);
        out.extend_from_slice(&noise[offset..offset + first]);
        out.extend_from_slice(&noise[..n - first]);
        left -= n + 4;
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_differ_and_are_framed() {
        let a = frame(1);
        let b = frame(2);
        assert_ne!(a, b);
        assert_eq!(a.len(), b.len());
        assert_eq!(&a[..2], &[0xFF, 0xD8]);
        assert_eq!(&a[a.len() - 2..], &[0xFF, 0xD9]);
        assert_eq!(frame(7), frame(7));
    }

    #[test]
    fn padded_frames_have_their_size_and_stay_framed() {
        for size in [0, 100, 300, 65_000, 600_000] {
            let a = frame_of_size(3, size);
            let b = frame_of_size(4, size);
            assert_ne!(a, b);
            assert!(a.len() == size || (size < 300 && a == frame(3)), "{size}: {}", a.len());
            assert_eq!(&a[..2], &[0xFF, 0xD8]);
            assert_eq!(&a[a.len() - 2..], &[0xFF, 0xD9]);
            // Every segment before the scan is well formed: marker, length, payload.
            let mut i = 2;
            while a[i + 1] != 0xDA {
                assert_eq!(a[i], 0xFF, "{size}: marker at {i}");
                i += 2 + usize::from(u16::from_be_bytes([a[i + 2], a[i + 3]]));
            }
        }
    }
}
