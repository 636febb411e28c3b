//! The bounded XML reader must never panic, and must respect its limits, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::onvif::xml::{Limits, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let limits = Limits { max_bytes: 64 * 1024, max_depth: 16, max_elements: 2_000, max_attributes: 16 };
    if let Ok(root) = parse(text, limits) {
        fn depth(e: &protocols::onvif::xml::Element) -> usize {
            1 + e.children.iter().map(depth).max().unwrap_or(0)
        }
        assert!(depth(&root) <= 16);
    }
});
