use super::*;

fn picture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pictures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn stats(name: &str) -> LumaStats {
    luma_stats(&picture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

const NOON: u16 = 12 * 60;

/// A judge that has learned the scene from its first healthy pictures.
fn learned(scene: &str) -> Judge {
    let mut j = Judge::new(PictureSettings::default());
    for name in [
        format!("frame0-{scene}.jpg"),
        format!("frame1-{scene}.jpg"),
        format!("frame2-{scene}.jpg"),
        format!("normal-{scene}.jpg"),
        format!("frame0-{scene}.jpg"),
    ] {
        assert_eq!(j.judge(&stats(&name), NOON).0, Verdict::Good, "{name} while learning");
    }
    assert!(j.baseline().is_some());
    j
}

#[test]
fn block_statistics_agree_with_an_independent_decoder() {
    // jpeg-decoder decodes the pixels; the block means and the within-block spread computed
    // from them must match what we read off the coefficients (up to rounding and clamping).
    for name in
        ["normal-coffee.jpg", "normal-camera.jpg", "dark-hubble.jpg", "covered-tape.jpg", "defocused-rocket.jpg"]
    {
        let data = picture(name);
        let mut d = jpeg_decoder::Decoder::new(&data[..]);
        let px = d.decode().unwrap();
        let info = d.info().unwrap();
        let (w, h) = (usize::from(info.width), usize::from(info.height));
        let channels = px.len() / (w * h);
        let luma = |x: usize, y: usize| -> f64 {
            let i = (y * w + x) * channels;
            if channels == 1 {
                f64::from(px[i])
            } else {
                0.299 * f64::from(px[i]) + 0.587 * f64::from(px[i + 1]) + 0.114 * f64::from(px[i + 2])
            }
        };
        let (mut means, mut within) = (Vec::new(), 0.0);
        for by in 0..h / 8 {
            for bx in 0..w / 8 {
                let vals: Vec<f64> = (0..64).map(|i| luma(bx * 8 + i % 8, by * 8 + i / 8)).collect();
                let m = vals.iter().sum::<f64>() / 64.0;
                within += vals.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / 64.0;
                means.push(m);
            }
        }
        let n = means.len() as f64;
        let mean = means.iter().sum::<f64>() / n;
        let stdev = (means.iter().map(|m| (m - mean) * (m - mean)).sum::<f64>() / n).sqrt();
        let detail = (within / n).sqrt();
        let s = stats(name);
        assert_eq!((usize::from(s.width), usize::from(s.height)), (w, h), "{name}");
        assert!((f64::from(s.mean) - mean).abs() < 1.5, "{name}: mean {} vs {mean}", s.mean);
        assert!((f64::from(s.block_stdev) - stdev).abs() < 1.0 + stdev * 0.03, "{name}: {} vs {stdev}", s.block_stdev);
        assert!((f64::from(s.detail) - detail).abs() < 0.5 + detail * 0.1, "{name}: detail {} vs {detail}", s.detail);
    }
}

#[test]
fn real_scenes_with_sensor_noise_are_good() {
    for scene in ["coffee", "chelsea", "rocket"] {
        let mut j = learned(scene);
        for round in 0..20 {
            for i in 0..3 {
                let (v, why) = j.judge(&stats(&format!("frame{i}-{scene}.jpg")), NOON);
                assert_eq!(v, Verdict::Good, "{scene} frame {i} round {round}: {why}");
            }
        }
    }
    // Other real photographs, judged only for darkness and uniformity.
    for name in ["normal-camera.jpg", "normal-astronaut.jpg", "normal-coffee-1080p.jpg", "blurred-clock.jpg"] {
        let mut j = Judge::new(PictureSettings::default());
        assert_eq!(j.judge(&stats(name), NOON).0, Verdict::Good, "{name}");
    }
}

#[test]
fn a_defocused_lens_is_told_against_the_scene_s_own_baseline() {
    for scene in ["coffee", "chelsea", "rocket"] {
        let mut j = learned(scene);
        let (v, why) = j.judge(&stats(&format!("defocused-{scene}.jpg")), NOON);
        assert_eq!(v, Verdict::Defocused, "{scene}");
        assert!(why.contains("out of focus"), "{why}");
        // Defocused pictures do not drag the baseline down: still defocused much later.
        for _ in 0..50 {
            j.judge(&stats(&format!("defocused-{scene}.jpg")), NOON);
        }
        assert_eq!(j.judge(&stats(&format!("defocused-{scene}.jpg")), NOON).0, Verdict::Defocused);
        assert_eq!(j.judge(&stats(&format!("frame1-{scene}.jpg")), NOON).0, Verdict::Good);
    }
    // A real motion-blurred photograph has less detail than any sharp real photograph.
    let blurred = stats("blurred-clock.jpg").sharpness();
    for name in
        ["normal-coffee.jpg", "normal-chelsea.jpg", "normal-camera.jpg", "normal-rocket.jpg", "normal-astronaut.jpg"]
    {
        assert!(blurred < stats(name).sharpness(), "{name}");
    }
}

#[test]
fn dark_and_covered_pictures() {
    for name in ["dark-coffee.jpg", "dark-chelsea.jpg", "dark-rocket.jpg", "dark-hubble.jpg"] {
        let (v, why) = Judge::new(PictureSettings::default()).judge(&stats(name), NOON);
        assert_eq!(v, Verdict::Dark, "{name}");
        assert!(why.contains("dark"), "{why}");
    }
    let (v, why) = Judge::new(PictureSettings::default()).judge(&stats("covered-tape.jpg"), NOON);
    assert_eq!(v, Verdict::Obstructed);
    assert!(why.contains("uniform"), "{why}");
    // A learned baseline does not change either.
    assert_eq!(learned("coffee").judge(&stats("covered-tape.jpg"), NOON).0, Verdict::Obstructed);
}

#[test]
fn darkness_at_night_is_expected_only_without_ir() {
    let night = NightHours::parse("19:00-07:00").unwrap();
    let no_ir = PictureSettings { ir: false, night_hours: Some(night), ..PictureSettings::default() };
    let dark = stats("dark-coffee.jpg");
    let mut j = Judge::new(no_ir.clone());
    assert_eq!(j.judge(&dark, 23 * 60).0, Verdict::ExpectedDark);
    assert_eq!(j.judge(&dark, 3 * 60).0, Verdict::ExpectedDark);
    assert_eq!(j.judge(&dark, NOON).0, Verdict::Dark);
    assert!(j.baseline().is_none(), "night pictures are not learned from");
    let with_ir = PictureSettings { ir: true, ..no_ir };
    assert_eq!(Judge::new(with_ir).judge(&dark, 23 * 60).0, Verdict::Dark);
}

#[test]
fn thresholds_and_a_fixed_baseline_are_honoured() {
    let s = stats("normal-chelsea.jpg");
    let strict = PictureSettings { uniform_below: s.block_stdev + 1.0, ..PictureSettings::default() };
    assert_eq!(Judge::new(strict).judge(&s, NOON).0, Verdict::Obstructed);
    let bright = PictureSettings { dark_below: s.mean + 1.0, ..PictureSettings::default() };
    assert_eq!(Judge::new(bright).judge(&s, NOON).0, Verdict::Dark);
    let fixed = PictureSettings { sharpness_baseline: Some(s.sharpness() * 3.0), ..PictureSettings::default() };
    assert_eq!(Judge::new(fixed).judge(&s, NOON).0, Verdict::Defocused, "judged from the first picture");
}

#[test]
fn broken_pictures_are_errors_never_panics() {
    let good = picture("normal-coffee.jpg");
    assert_eq!(luma_stats(b"").unwrap_err(), JpegError::Truncated);
    assert_eq!(luma_stats(b"GIF89a").unwrap_err(), JpegError::NotJpeg);
    assert_eq!(luma_stats(&good[..good.len() / 2]).unwrap_err(), JpegError::Truncated);
    assert!(luma_stats(&good[..200]).is_err());
    // A progressive picture: SOI then SOF2.
    let progressive = [0xFF, 0xD8, 0xFF, 0xC2, 0x00, 0x0B, 8, 0, 8, 0, 8, 1, 1, 0x11, 0];
    assert_eq!(luma_stats(&progressive).unwrap_err(), JpegError::Unsupported("progressive JPEG"));
    // Random damage anywhere: an error or some statistics, never a panic or a hang.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..3000 {
        let mut bad = good.clone();
        for _ in 0..1 + next() % 8 {
            let i = (next() as usize) % bad.len();
            bad[i] = next() as u8;
        }
        if next() % 4 == 0 {
            bad.truncate((next() as usize) % bad.len());
        }
        let _ = luma_stats(&bad);
    }
}

#[test]
fn restart_intervals_and_grey_pictures_are_read() {
    // Pictures from another encoder with restart markers and a single component, checked
    // against the plain picture's statistics.
    let camera = picture("normal-camera.jpg");
    let mut d = jpeg_decoder::Decoder::new(&camera[..]);
    let px = d.decode().unwrap();
    let info = d.info().unwrap();
    let grey: Vec<u8> = px.chunks(3).map(|p| p[0]).collect();
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 85);
    enc.set_restart_interval(7);
    enc.encode(&grey, info.width, info.height, jpeg_encoder::ColorType::Luma).unwrap();
    let s = luma_stats(&out).unwrap();
    let plain = stats("normal-camera.jpg");
    assert!((s.mean - plain.mean).abs() < 2.0, "{} vs {}", s.mean, plain.mean);
    assert!((s.block_stdev - plain.block_stdev).abs() < 2.0);
}

#[test]
fn night_hours_and_resolutions_parse() {
    assert_eq!(NightHours::parse("19:00-07:00"), Some(NightHours { from: 1140, to: 420 }));
    assert_eq!(NightHours::parse("19:00-07:00").unwrap().to_string(), "19:00-07:00");
    let day = NightHours::parse("09:30-17:00").unwrap();
    assert!(day.contains(10 * 60) && !day.contains(17 * 60) && !day.contains(9 * 60));
    for bad in ["", "19-07", "25:00-07:00", "19:00-07:60", "19:00"] {
        assert_eq!(NightHours::parse(bad), None, "{bad}");
    }
    assert_eq!(Resolution::parse("1920x1080"), Some(Resolution { width: 1920, height: 1080 }));
    assert_eq!(Resolution::parse("1280×720"), Some(Resolution::HD));
    assert_eq!(Resolution::parse("0x720"), None);
    assert!(Resolution::parse("1920x1080").unwrap().meets(Resolution::HD));
    assert!(Resolution::parse("1080x1920").unwrap().meets(Resolution::HD), "portrait corridor camera");
    assert!(!Resolution::parse("704x576").unwrap().meets(Resolution::HD));
    assert!(!Resolution::parse("1280x704").unwrap().meets(Resolution::HD));
}
