//! Test-only: simulated cameras that answer WS-Discovery on UDP 3702 (multicast) at one
//! address, for the discovery tests that run in network namespaces
//! (tests/tests/gateway/discovery_netns.rs). It exists because the `device-sim serve` CLI has no
//! switch for the responder yet; once it has, the tests can use that instead.
//!
//! usage: discovery_responder --bind IP [--cameras N] [--down ID]...
//! Prints `camera ID DEVICE_URL` per camera, then `ready ADDR`; serves until killed.

use std::net::IpAddr;
use std::process::ExitCode;

use device_sim::camera::{AuthMode, CameraFault, CameraFleet, CameraSpec};

fn usage() -> ExitCode {
    eprintln!("usage: discovery_responder --bind IP [--cameras N] [--down ID]...");
    ExitCode::from(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut bind: Option<IpAddr> = None;
    let mut cameras = 2usize;
    let mut down = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next();
        match (a.as_str(), v) {
            ("--bind", Some(v)) => match v.parse() {
                Ok(ip) => bind = Some(ip),
                Err(_) => return usage(),
            },
            ("--cameras", Some(v)) => match v.parse() {
                Ok(n) => cameras = n,
                Err(_) => return usage(),
            },
            ("--down", Some(v)) => down.push(v),
            _ => return usage(),
        }
    }
    let Some(bind) = bind else { return usage() };
    let specs = (1..=cameras)
        .map(|i| CameraSpec {
            id: format!("cam-{i:02}"),
            name: format!("Camera {i}"),
            username: "admin".into(),
            password: "admin".into(),
            auth: AuthMode::UsernameToken,
        })
        .collect();
    let fleet = match CameraFleet::start(bind, specs).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("discovery_responder: {e}");
            return ExitCode::from(1);
        }
    };
    for id in &down {
        if let Err(e) = fleet.set_fault(id, CameraFault::Down, true) {
            eprintln!("discovery_responder: {e}");
            return ExitCode::from(2);
        }
    }
    let responder = match fleet.start_discovery(bind) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("discovery_responder: {e}");
            return ExitCode::from(1);
        }
    };
    for c in fleet.cameras() {
        println!("camera {} {}", c.id, c.device_url);
    }
    println!("ready {}", responder.local_addr());
    let _ = tokio::signal::ctrl_c().await;
    responder.stop();
    fleet.shutdown().await;
    ExitCode::SUCCESS
}
