//! Modbus TCP framing and request handling for the simulated panels, written by hand.
//!
//! Why not the tokio-modbus server: its service returns a response or an exception for
//! every request and frames the answer itself, so it cannot answer with a wrong
//! transaction id, stay silent while keeping the connection open, or cut the connection
//! mid-request — exactly the faults the gateway must survive
//! (see docs/DESIGN.md, "Protocol facts that bite"). The protocol subset a panel needs is
//! small: the MBAP header and function codes 1, 2, 3, 4, 5, 6, 15 and 16, with exceptions
//! 1, 2 and 3.
//!
//! Everything here is pure and bounded: a header with a bad protocol id or a length outside
//! 2..=254 is a [`FrameError`] (the connection is closed), a PDU too short for its function
//! is answered with exception 3, and nothing indexes past the data it was given.

/// The MBAP header's size: transaction id, protocol id, length, unit id.
pub const HEADER_LEN: usize = 7;
/// The largest MBAP length field: unit id + a 253-byte PDU.
pub const MAX_LENGTH_FIELD: usize = 254;

/// One request frame cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFrame {
    pub transaction_id: u16,
    pub unit_id: u8,
    pub pdu: Vec<u8>,
}

/// A header no Modbus TCP client sends: the stream cannot be resynchronised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("protocol id {0} is not 0 (Modbus)")]
    ProtocolId(u16),
    #[error("length field {0} is outside 2..=254")]
    Length(usize),
}

/// Cuts the first complete frame off `buf`. `Ok(None)` when more bytes are needed.
pub fn take_frame(buf: &mut Vec<u8>) -> Result<Option<RequestFrame>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let transaction_id = u16::from_be_bytes([buf[0], buf[1]]);
    let protocol = u16::from_be_bytes([buf[2], buf[3]]);
    let length = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
    if protocol != 0 {
        return Err(FrameError::ProtocolId(protocol));
    }
    if !(2..=MAX_LENGTH_FIELD).contains(&length) {
        return Err(FrameError::Length(length));
    }
    let total = 6 + length;
    if buf.len() < total {
        return Ok(None);
    }
    let unit_id = buf[6];
    let pdu = buf[HEADER_LEN..total].to_vec();
    buf.drain(..total);
    Ok(Some(RequestFrame { transaction_id, unit_id, pdu }))
}

/// Builds a response frame around `pdu`.
pub fn response_frame(transaction_id: u16, unit_id: u8, pdu: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + pdu.len());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    // A PDU is at most 253 bytes, so this fits.
    out.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
    out.push(unit_id);
    out.extend_from_slice(pdu);
    out
}

/// An exception response PDU.
pub fn exception(function: u8, code: u8) -> Vec<u8> {
    vec![function | 0x80, code]
}

/// The four data tables of one panel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    pub coils: Vec<bool>,
    pub discrete: Vec<bool>,
    pub holding: Vec<u16>,
    pub input: Vec<u16>,
}

const ILLEGAL_FUNCTION: u8 = 1;
const ILLEGAL_ADDRESS: u8 = 2;
const ILLEGAL_VALUE: u8 = 3;

fn u16_at(pdu: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*pdu.get(i)?, *pdu.get(i + 1)?]))
}

/// `[addr, addr + qty)` as a range into a table of `len`, or `None` when it does not fit.
fn range(addr: u16, qty: u16, len: usize) -> Option<std::ops::Range<usize>> {
    let s = usize::from(addr);
    let e = s + usize::from(qty);
    (e <= len).then_some(s..e)
}

fn pack_bits(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, b) in bits.iter().enumerate() {
        if *b {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    out
}

/// Answers one request PDU against `mem`: the response PDU, or an exception PDU.
pub fn handle_pdu(mem: &mut Memory, pdu: &[u8]) -> Vec<u8> {
    let Some(&function) = pdu.first() else {
        return exception(0, ILLEGAL_FUNCTION);
    };
    match handle(mem, function, pdu) {
        Ok(r) => r,
        Err(code) => exception(function, code),
    }
}

fn handle(mem: &mut Memory, function: u8, pdu: &[u8]) -> Result<Vec<u8>, u8> {
    let addr = || u16_at(pdu, 1).ok_or(ILLEGAL_VALUE);
    let second = || u16_at(pdu, 3).ok_or(ILLEGAL_VALUE);
    match function {
        1 | 2 => {
            let (a, q) = (addr()?, second()?);
            if !(1..=2000).contains(&q) {
                return Err(ILLEGAL_VALUE);
            }
            let table = if function == 1 { &mem.coils } else { &mem.discrete };
            let r = range(a, q, table.len()).ok_or(ILLEGAL_ADDRESS)?;
            let packed = pack_bits(&table[r]);
            let mut out = vec![function, packed.len() as u8];
            out.extend_from_slice(&packed);
            Ok(out)
        }
        3 | 4 => {
            let (a, q) = (addr()?, second()?);
            if !(1..=125).contains(&q) {
                return Err(ILLEGAL_VALUE);
            }
            let table = if function == 3 { &mem.holding } else { &mem.input };
            let r = range(a, q, table.len()).ok_or(ILLEGAL_ADDRESS)?;
            let mut out = Vec::with_capacity(2 + 2 * usize::from(q));
            out.push(function);
            out.push((2 * q) as u8);
            for w in &table[r] {
                out.extend_from_slice(&w.to_be_bytes());
            }
            Ok(out)
        }
        5 => {
            let (a, v) = (addr()?, second()?);
            let on = match v {
                0xFF00 => true,
                0x0000 => false,
                _ => return Err(ILLEGAL_VALUE),
            };
            let slot = mem.coils.get_mut(usize::from(a)).ok_or(ILLEGAL_ADDRESS)?;
            *slot = on;
            Ok(pdu[..5].to_vec())
        }
        6 => {
            let (a, v) = (addr()?, second()?);
            let slot = mem.holding.get_mut(usize::from(a)).ok_or(ILLEGAL_ADDRESS)?;
            *slot = v;
            Ok(pdu[..5].to_vec())
        }
        15 => {
            let (a, q) = (addr()?, second()?);
            let count = usize::from(*pdu.get(5).ok_or(ILLEGAL_VALUE)?);
            if !(1..=1968).contains(&q) || count != usize::from(q).div_ceil(8) || pdu.len() < 6 + count {
                return Err(ILLEGAL_VALUE);
            }
            let r = range(a, q, mem.coils.len()).ok_or(ILLEGAL_ADDRESS)?;
            let data = &pdu[6..6 + count];
            for (i, slot) in mem.coils[r].iter_mut().enumerate() {
                *slot = data[i / 8] & (1 << (i % 8)) != 0;
            }
            Ok(pdu[..5].to_vec())
        }
        16 => {
            let (a, q) = (addr()?, second()?);
            let count = usize::from(*pdu.get(5).ok_or(ILLEGAL_VALUE)?);
            if !(1..=123).contains(&q) || count != 2 * usize::from(q) || pdu.len() < 6 + count {
                return Err(ILLEGAL_VALUE);
            }
            let r = range(a, q, mem.holding.len()).ok_or(ILLEGAL_ADDRESS)?;
            for (i, slot) in mem.holding[r].iter_mut().enumerate() {
                *slot = u16::from_be_bytes([pdu[6 + 2 * i], pdu[7 + 2 * i]]);
            }
            Ok(pdu[..5].to_vec())
        }
        _ => Err(ILLEGAL_FUNCTION),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> Memory {
        Memory { coils: vec![false; 20], discrete: vec![true; 3], holding: (0..30).collect(), input: vec![7; 4] }
    }

    #[test]
    fn frames_are_cut_and_bounded() {
        let mut buf = vec![0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 2, 0xAA];
        let f = take_frame(&mut buf).unwrap().unwrap();
        assert_eq!(f, RequestFrame { transaction_id: 1, unit_id: 1, pdu: vec![3, 0, 0, 0, 2] });
        assert_eq!(buf, vec![0xAA]);
        let mut partial = vec![0, 1, 0, 0, 0, 6, 1, 3];
        assert_eq!(take_frame(&mut partial), Ok(None));
        assert_eq!(take_frame(&mut vec![0, 1, 0, 9, 0, 6, 1]), Err(FrameError::ProtocolId(9)));
        assert_eq!(take_frame(&mut vec![0, 1, 0, 0, 0xFF, 0xFF, 1]), Err(FrameError::Length(65535)));
        assert_eq!(take_frame(&mut vec![0, 1, 0, 0, 0, 1, 1]), Err(FrameError::Length(1)));
        assert_eq!(response_frame(5, 2, &[3, 2, 0, 9]), vec![0, 5, 0, 0, 0, 5, 2, 3, 2, 0, 9]);
    }

    #[test]
    fn reads_writes_and_exceptions() {
        let mut m = mem();
        assert_eq!(handle_pdu(&mut m, &[3, 0, 2, 0, 2]), vec![3, 4, 0, 2, 0, 3]);
        assert_eq!(handle_pdu(&mut m, &[4, 0, 0, 0, 1]), vec![4, 2, 0, 7]);
        assert_eq!(handle_pdu(&mut m, &[2, 0, 0, 0, 3]), vec![2, 1, 0b111]);
        assert_eq!(handle_pdu(&mut m, &[6, 0, 1, 0x12, 0x34]), vec![6, 0, 1, 0x12, 0x34]);
        assert_eq!(m.holding[1], 0x1234);
        assert_eq!(handle_pdu(&mut m, &[5, 0, 9, 0xFF, 0]), vec![5, 0, 9, 0xFF, 0]);
        assert!(m.coils[9]);
        assert_eq!(handle_pdu(&mut m, &[1, 0, 8, 0, 2]), vec![1, 1, 0b10]);
        assert_eq!(handle_pdu(&mut m, &[15, 0, 0, 0, 10, 2, 0b101, 0b10]), vec![15, 0, 0, 0, 10]);
        assert_eq!(&m.coils[..10], &[true, false, true, false, false, false, false, false, false, true]);
        assert_eq!(handle_pdu(&mut m, &[16, 0, 3, 0, 2, 4, 0, 1, 0, 2]), vec![16, 0, 3, 0, 2]);
        assert_eq!(&m.holding[3..5], &[1, 2]);
        // Exceptions: function, address, value.
        assert_eq!(handle_pdu(&mut m, &[8, 0, 0]), vec![0x88, 1]);
        assert_eq!(handle_pdu(&mut m, &[3, 0, 29, 0, 2]), vec![0x83, 2]);
        assert_eq!(handle_pdu(&mut m, &[3, 0, 0, 0, 126]), vec![0x83, 3]);
        assert_eq!(handle_pdu(&mut m, &[3, 0, 0, 0, 0]), vec![0x83, 3]);
        assert_eq!(handle_pdu(&mut m, &[1, 0xFF, 0xFF, 0x07, 0xD0]), vec![0x81, 2]);
        assert_eq!(handle_pdu(&mut m, &[5, 0, 0, 0x12, 0]), vec![0x85, 3]);
        assert_eq!(handle_pdu(&mut m, &[16, 0, 0, 0, 2, 4, 0]), vec![0x90, 3], "truncated data");
        assert_eq!(handle_pdu(&mut m, &[15, 0, 0, 0, 10, 1, 0]), vec![0x8F, 3], "byte count mismatch");
        // Truncated PDUs.
        assert_eq!(handle_pdu(&mut m, &[3, 0]), vec![0x83, 3]);
        assert_eq!(handle_pdu(&mut m, &[]), vec![0x80, 1]);
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic fuzz: random PDUs and streams.
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut m = mem();
        for _ in 0..20_000 {
            let len = (next() % 20) as usize;
            let mut pdu: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(f) = pdu.first_mut() {
                *f %= 20;
            }
            let _ = handle_pdu(&mut m, &pdu);
            let mut stream: Vec<u8> = (0..(next() % 40)).map(|_| next() as u8).collect();
            while let Ok(Some(_)) = take_frame(&mut stream) {}
        }
    }
}
