//! RTSP message and SDP parsing: no panics, and a parsed message never claims more bytes than
//! it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocols::onvif::rtsp;

fuzz_target!(|data: &[u8]| {
    for m in [rtsp::parse_response(data, 16 * 1024), rtsp::parse_request(data, 16 * 1024)].into_iter().flatten() {
        assert!(m.len <= data.len());
        let _ = rtsp::sdp_video(&m.body);
    }
    let _ = rtsp::sdp_video(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = rtsp::host_port(s);
    }
});
