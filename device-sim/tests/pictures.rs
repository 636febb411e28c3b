//! The simulated cameras' pictures as an independent decoder (jpeg-decoder) sees them, fetched
//! through each camera's real snapshot URL (HTTP Digest): every picture fault decodes to the
//! picture it means. And the `low-resolution` fault as an independent ONVIF client (oxvif)
//! sees it.

use std::net::IpAddr;

use device_sim::camera::{AuthMode, CameraFault, CameraFleet, CameraSpec};
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use jpeg_decoder::{CodingProcess, Decoder};
use oxvif::OnvifClient;
use protocols::onvif::http_digest::Challenge;

const PASSWORD: &str = "s3cret";

fn spec(id: &str, auth: AuthMode) -> CameraSpec {
    CameraSpec { id: id.into(), name: id.into(), username: "admin".into(), password: PASSWORD.into(), auth }
}

async fn fleet(specs: Vec<CameraSpec>) -> CameraFleet {
    CameraFleet::start(IpAddr::from([127, 0, 0, 1]), specs).await.expect("start the fleet")
}

/// A client of one camera's HTTP side that answers its digest challenge (the nonce is good
/// for minutes).
struct Http {
    client: reqwest::Client,
    challenge: Option<Challenge>,
}

impl Http {
    fn new() -> Http {
        Http { client: reqwest::Client::new(), challenge: None }
    }

    async fn send(&mut self, method: reqwest::Method, url: &str, body: Option<String>) -> reqwest::Response {
        let path = url.split_once("://").and_then(|(_, r)| r.find('/').map(|i| r[i..].to_string())).unwrap();
        for _ in 0..2 {
            let mut req = self.client.request(method.clone(), url);
            if let Some(b) = &body {
                req = req.header(CONTENT_TYPE, "application/soap+xml; charset=utf-8").body(b.clone());
            }
            if let Some(ch) = &self.challenge {
                req = req.header(AUTHORIZATION, ch.authorize(method.as_str(), &path, "admin", PASSWORD, "c0ffee", 1));
            }
            let r = req.send().await.expect("request");
            if r.status() != 401 {
                return r;
            }
            let h = r.headers().get(WWW_AUTHENTICATE).expect("a challenge").to_str().unwrap().to_string();
            self.challenge = Some(Challenge::parse(&h).expect("a digest challenge"));
        }
        panic!("{url}: refused twice");
    }

    async fn snapshot(&mut self, url: &str) -> Vec<u8> {
        let r = self.send(reqwest::Method::GET, url, None).await;
        assert_eq!(r.status(), 200, "{url}");
        assert_eq!(r.headers().get(CONTENT_TYPE).unwrap(), "image/jpeg");
        r.bytes().await.expect("the picture").to_vec()
    }
}

/// A decoded picture: its size and luma plane.
struct Luma {
    w: usize,
    h: usize,
    y: Vec<u8>,
}

/// Decodes as any client would (to RGB), checks that it is a baseline JPEG with 4:2:0
/// chroma, and returns its luma (BT.601, as JPEG's YCbCr has it).
fn decode(jpeg: &[u8]) -> Luma {
    let mut d = Decoder::new(jpeg);
    let rgb = d.decode().expect("decodes");
    let info = d.info().expect("info");
    assert_eq!(info.coding_process, CodingProcess::DctSequential);
    assert_eq!(rgb.len(), usize::from(info.width) * usize::from(info.height) * 3);
    let sof = segment(jpeg, 0xC0).expect("SOF0: a baseline JPEG");
    assert_eq!(sof[5], 3, "three components");
    assert_eq!((sof[7], sof[10], sof[13]), (0x22, 0x11, 0x11), "4:2:0 sampling");
    let luma = |p: &[u8]| (0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])).round() as u8;
    Luma { w: info.width.into(), h: info.height.into(), y: rgb.chunks_exact(3).map(luma).collect() }
}

/// The payload of the first segment with `marker` before the scan.
fn segment(jpeg: &[u8], marker: u8) -> Option<&[u8]> {
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF && jpeg[i + 1] != 0xDA {
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if jpeg[i + 1] == marker {
            return jpeg.get(i + 4..i + 2 + len);
        }
        i += 2 + len;
    }
    None
}

impl Luma {
    fn mean(&self) -> f64 {
        self.y.iter().map(|&v| f64::from(v)).sum::<f64>() / self.y.len() as f64
    }

    /// The standard deviation of the 8×8 block means (what a 1/8-scale decode sees).
    fn block_mean_stdev(&self) -> f64 {
        let mut means = Vec::new();
        for by in 0..self.h / 8 {
            for bx in 0..self.w / 8 {
                let mut sum = 0.0;
                for y in 0..8 {
                    for x in 0..8 {
                        sum += f64::from(self.y[(by * 8 + y) * self.w + bx * 8 + x]);
                    }
                }
                means.push(sum / 64.0);
            }
        }
        let m = means.iter().sum::<f64>() / means.len() as f64;
        (means.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / means.len() as f64).sqrt()
    }

    /// Local detail: the mean absolute 4-neighbour Laplacian.
    fn laplacian(&self) -> f64 {
        let at = |x: usize, y: usize| f64::from(self.y[y * self.w + x]);
        let mut sum = 0.0;
        for y in 1..self.h - 1 {
            for x in 1..self.w - 1 {
                sum += (4.0 * at(x, y) - at(x - 1, y) - at(x + 1, y) - at(x, y - 1) - at(x, y + 1)).abs();
            }
        }
        sum / ((self.w - 2) * (self.h - 2)) as f64
    }
}

/// Three pictures in a row: each decodes at `size`, and each differs from the one before, in
/// its bytes and in its pixels (the sensor noise).
async fn three(http: &mut Http, url: &str, size: (usize, usize)) -> Vec<Luma> {
    let mut out: Vec<Luma> = Vec::new();
    let mut last: Option<Vec<u8>> = None;
    for _ in 0..3 {
        let jpeg = http.snapshot(url).await;
        let luma = decode(&jpeg);
        assert_eq!((luma.w, luma.h), size);
        if let (Some(prev), Some(before)) = (&last, out.last()) {
            assert_ne!(prev, &jpeg, "the bytes change");
            assert_ne!(before.y, luma.y, "the pixels change");
        }
        last = Some(jpeg);
        out.push(luma);
    }
    out
}

#[tokio::test]
async fn every_picture_fault_decodes_to_what_it_means() {
    let fleet = fleet(vec![spec("cam-pic", AuthMode::UsernameToken)]).await;
    let url = fleet.cameras()[0].snapshot_uri.clone();
    let mut http = Http::new();

    let normal = three(&mut http, &url, (640, 360)).await;
    let (mean, spread, detail) = (normal[0].mean(), normal[0].block_mean_stdev(), normal[0].laplacian());
    eprintln!("normal: mean {mean:.1}, block-mean stdev {spread:.1}, laplacian {detail:.2}");
    assert!((60.0..190.0).contains(&mean), "normal mean {mean}");
    assert!(spread > 20.0, "normal block-mean stdev {spread}");

    fleet.set_fault("cam-pic", CameraFault::Covered, true).unwrap();
    let covered = three(&mut http, &url, (640, 360)).await;
    let (m, s) = (covered[0].mean(), covered[0].block_mean_stdev());
    eprintln!("covered: mean {m:.1}, block-mean stdev {s:.2}");
    assert!(s < 3.0, "covered block-mean stdev {s}");
    assert!((25.0..45.0).contains(&m), "covered mean {m}");
    fleet.set_fault("cam-pic", CameraFault::Covered, false).unwrap();

    fleet.set_fault("cam-pic", CameraFault::Dark, true).unwrap();
    let dark = three(&mut http, &url, (640, 360)).await;
    let m = dark[0].mean();
    eprintln!("dark: mean {m:.1}, block-mean stdev {:.2}", dark[0].block_mean_stdev());
    assert!(m < 12.0, "dark mean {m}");
    fleet.set_fault("cam-pic", CameraFault::Dark, false).unwrap();

    fleet.set_fault("cam-pic", CameraFault::Blurred, true).unwrap();
    let blurred = three(&mut http, &url, (640, 360)).await;
    let (m, d) = (blurred[0].mean(), blurred[0].laplacian());
    eprintln!("blurred: mean {m:.1}, block-mean stdev {:.1}, laplacian {d:.2}", blurred[0].block_mean_stdev());
    assert!((m - mean).abs() < 15.0, "blurred mean {m} vs {mean}");
    assert!(d < 0.4 * detail, "blurred laplacian {d} vs {detail}");
    fleet.set_fault("cam-pic", CameraFault::Blurred, false).unwrap();

    // Back to the room; `low-resolution` leaves the picture alone.
    fleet.set_fault("cam-pic", CameraFault::LowResolution, true).unwrap();
    let back = three(&mut http, &url, (640, 360)).await;
    assert!((back[0].mean() - mean).abs() < 2.0 && back[0].block_mean_stdev() > 20.0);
    fleet.set_fault("cam-pic", CameraFault::LowResolution, false).unwrap();

    // Frozen: the same bytes, picture fault or not, until it thaws.
    for fault in [None, Some(CameraFault::Covered)] {
        if let Some(f) = fault {
            fleet.set_fault("cam-pic", f, true).unwrap();
        }
        fleet.set_fault("cam-pic", CameraFault::Frozen, true).unwrap();
        let a = http.snapshot(&url).await;
        let b = http.snapshot(&url).await;
        assert_eq!(a, b, "{fault:?}: frozen");
        fleet.set_fault("cam-pic", CameraFault::Frozen, false).unwrap();
        let c = http.snapshot(&url).await;
        assert_ne!(b, c, "{fault:?}: thawed");
        if let Some(f) = fault {
            fleet.set_fault("cam-pic", f, false).unwrap();
        }
    }
    fleet.shutdown().await;
}

#[tokio::test]
async fn pictures_have_their_size_and_padding() {
    let fleet = fleet(vec![spec("cam-hd", AuthMode::UsernameToken), spec("cam-pad", AuthMode::Digest)]).await;
    let urls: Vec<String> = fleet.cameras().into_iter().map(|c| c.snapshot_uri).collect();

    fleet.set_picture_size("cam-hd", 1920, 1080).unwrap();
    assert!(
        fleet.set_picture_size("cam-hd", 8, 1080).is_err() && fleet.set_picture_size("cam-hd", 1920, 5000).is_err()
    );
    let mut http = Http::new();
    let hd = three(&mut http, &urls[0], (1920, 1080)).await;
    let (m, s) = (hd[0].mean(), hd[0].block_mean_stdev());
    assert!((60.0..190.0).contains(&m) && s > 20.0, "1080p: mean {m}, block-mean stdev {s}");
    let len = http.snapshot(&urls[0]).await.len();
    assert!((150_000..=500_000).contains(&len), "a 1080p picture of {len} bytes");

    // Padded to 600 KB with APP15 segments: still the picture, exactly that long.
    fleet.set_picture_bytes("cam-pad", 600_000).unwrap();
    let mut http = Http::new();
    let a = http.snapshot(&urls[1]).await;
    let b = http.snapshot(&urls[1]).await;
    assert_eq!((a.len(), b.len()), (600_000, 600_000));
    assert_ne!(a, b);
    let luma = decode(&a);
    assert_eq!((luma.w, luma.h), (640, 360));
    assert!(luma.block_mean_stdev() > 20.0);
    fleet.shutdown().await;
}

/// The main profile's encoder resolution in GetProfiles (raw SOAP), GetVideoEncoderConfigurations
/// and GetVideoEncoderConfiguration (oxvif, the gateway's client).
async fn resolutions(http: &mut Http, device_url: &str) -> [(u32, u32); 3] {
    let dt = OnvifClient::new(device_url).get_system_date_and_time().await.expect("clock");
    let c = OnvifClient::new(device_url).with_credentials("admin", PASSWORD).with_utc_offset(dt.utc_offset_secs());
    let media = c.get_capabilities().await.expect("capabilities").media.url.expect("media xaddr");
    let profiles = c.get_profiles(&media).await.expect("profiles");
    let token = profiles[0].video_encoder_token.clone().expect("the profile's encoder");
    let one = c.get_video_encoder_configuration(&media, &token).await.expect("GetVideoEncoderConfiguration");
    let all = c.get_video_encoder_configurations(&media).await.expect("GetVideoEncoderConfigurations");
    assert_eq!(all.len(), 1);
    assert_eq!((one.token.as_str(), all[0].token.as_str()), (token.as_str(), token.as_str()));

    let body = "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body><GetProfiles xmlns=\"http://www.onvif.org/ver10/media/wsdl\"/></s:Body></s:Envelope>";
    let r = http.send(reqwest::Method::POST, &media, Some(body.to_string())).await;
    assert_eq!(r.status(), 200);
    let xml = r.text().await.unwrap();
    let num = |tag: &str| -> u32 {
        let open = format!("<tt:{tag}>");
        let i = xml.find(&open).unwrap_or_else(|| panic!("no {tag} in {xml}")) + open.len();
        xml[i..].split('<').next().unwrap().parse().unwrap()
    };
    [
        (num("Width"), num("Height")),
        (all[0].resolution.width, all[0].resolution.height),
        (one.resolution.width, one.resolution.height),
    ]
}

#[tokio::test]
async fn low_resolution_shows_in_every_encoder_configuration() {
    let fleet = fleet(vec![spec("cam-res", AuthMode::Digest)]).await;
    let device_url = fleet.cameras()[0].device_url.clone();
    let mut http = Http::new();
    assert_eq!(resolutions(&mut http, &device_url).await, [(1920, 1080); 3]);
    fleet.set_fault("cam-res", CameraFault::LowResolution, true).unwrap();
    assert_eq!(resolutions(&mut http, &device_url).await, [(640, 480); 3]);
    fleet.set_fault("cam-res", CameraFault::LowResolution, false).unwrap();
    assert_eq!(resolutions(&mut http, &device_url).await, [(1920, 1080); 3]);

    // An unknown encoder token is refused with a SOAP fault, not answered with the main one.
    let dt = OnvifClient::new(&device_url).get_system_date_and_time().await.unwrap();
    let c = OnvifClient::new(&device_url).with_credentials("admin", PASSWORD).with_utc_offset(dt.utc_offset_secs());
    let media = c.get_capabilities().await.unwrap().media.url.unwrap();
    assert!(c.get_video_encoder_configuration(&media, "vec_9").await.is_err());
    fleet.shutdown().await;
}

/// Many cameras asking at once for a size nobody has asked for yet: each gets its picture
/// (the frames are encoded once while the others wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_requests_at_once_all_get_their_picture() {
    let specs = (0..16).map(|i| spec(&format!("cam-{i:02}"), AuthMode::UsernameToken)).collect();
    let fleet = fleet(specs).await;
    let mut tasks = Vec::new();
    for cam in fleet.cameras() {
        fleet.set_picture_size(&cam.id, 320, 176).unwrap();
        tasks.push(tokio::spawn(async move { Http::new().snapshot(&cam.snapshot_uri).await }));
    }
    for t in tasks {
        let luma = decode(&t.await.unwrap());
        assert_eq!((luma.w, luma.h), (320, 176));
    }
    fleet.shutdown().await;
}
