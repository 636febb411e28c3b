//! SOAP envelope reading, fault classification and WS-Security token extraction: no panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::onvif::soap::Envelope;
use protocols::onvif::wsse::UsernameToken;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(env) = Envelope::parse(text, 64 * 1024) {
        let _ = env.operation();
        if let Some(f) = env.fault() {
            let _ = f.is_auth_failure();
        }
        if let Ok(tok) = UsernameToken::from_header(env.header.as_ref()) {
            let _ = tok.verify("admin", "pw", chrono::Utc::now(), 60);
        }
    }
});
