//! Digest header parsing (`WWW-Authenticate`, `Authorization`): no panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::onvif::http_digest::{Authorization, Challenge};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Some(c) = Challenge::parse(s) {
        let _ = Challenge::parse(&c.header());
        let _ = c.authorize("GET", "/x", "u", "p", "cn", 1);
    }
    if let Some(a) = Authorization::parse(s) {
        let _ = a.verify("GET", "p");
    }
});
