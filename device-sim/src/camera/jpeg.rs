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
}
