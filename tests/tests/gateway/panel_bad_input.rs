//! Hostile and broken input: the poller against tiny hand-rolled TCP servers that answer
//! with garbage, truncated frames, impossible lengths, wrong counts or wrong function codes.
//! Every case must give `Failed` observations (with the right fault) and no panic; the
//! poller keeps running. Also: invalid profiles give clear errors, and the simulator's
//! server survives garbage from clients.

use std::net::SocketAddr;
use std::time::Duration;

use gateway::config::{PanelConfig, PanelKind};
use gateway::pollers::panel::{ProfileStore, load_profile, spawn_panel_poller};
use gateway::pollers::{Observation, PanelFault, PanelOutcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the evil server does with one request (MBAP header + PDU as received).
type Answer = fn(&[u8]) -> Reply;

enum Reply {
    /// Write these bytes and keep the connection.
    Send(Vec<u8>),
    /// Write these bytes and close.
    SendAndClose(Vec<u8>),
}

/// A server that reads one request at a time (12 bytes: all our reads are that long) and
/// answers with `answer`.
async fn evil_server(answer: Answer) -> (SocketAddr, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        loop {
            let (sock, _) = tokio::select! {
                _ = s.cancelled() => return,
                a = listener.accept() => match a { Ok(a) => a, Err(_) => return },
            };
            let s2 = s.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = s2.cancelled() => {}
                    _ = serve(sock, answer) => {}
                }
            });
        }
    });
    (addr, stop)
}

async fn serve(mut sock: TcpStream, answer: Answer) {
    let mut req = [0u8; 12];
    loop {
        if sock.read_exact(&mut req).await.is_err() {
            return;
        }
        match answer(&req) {
            Reply::Send(b) => {
                if sock.write_all(&b).await.is_err() {
                    return;
                }
            }
            Reply::SendAndClose(b) => {
                let _ = sock.write_all(&b).await;
                return;
            }
        }
    }
}

/// A response frame echoing the request's transaction and unit ids around `pdu`.
fn frame(req: &[u8], pdu: &[u8]) -> Vec<u8> {
    let mut out = vec![req[0], req[1], 0, 0];
    out.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
    out.push(req[6]);
    out.extend_from_slice(pdu);
    out
}

fn count_of(req: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([req[10], req[11]]))
}

/// A correct answer to a holding-register read, all zeros.
fn good(req: &[u8]) -> Vec<u8> {
    let n = count_of(req);
    let mut pdu = vec![3, (2 * n) as u8];
    pdu.extend(std::iter::repeat_n(0u8, 2 * n));
    frame(req, &pdu)
}

fn cfg(addr: SocketAddr) -> PanelConfig {
    PanelConfig {
        pace: std::time::Duration::ZERO,
        id: "evil".into(),
        name: "evil".into(),
        kind: PanelKind::Alarm,
        address: addr.to_string(),
        unit_id: 1,
        profile: "generic-alarm".into(),
        poll_interval: Duration::from_millis(50),
        timeout: Duration::from_millis(300),
        maintenance: false,
    }
}

/// Polls the evil server; returns the first `n` outcomes and checks the poller still runs.
async fn outcomes(answer: Answer, n: usize) -> Vec<PanelOutcome> {
    let (addr, stop_server) = evil_server(answer).await;
    let profile = protocols::modbus::builtin("generic-alarm").expect("built-in");
    let (tx, mut rx) = mpsc::channel(16);
    let stop = CancellationToken::new();
    let handle = spawn_panel_poller(cfg(addr), profile, tx, stop.clone());
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(Observation::Panel(p))) => out.push(p.outcome),
            Ok(Some(_)) => {}
            Ok(None) => panic!("the poller stopped (panicked?)"),
            Err(_) => panic!("no observation within 5 s"),
        }
    }
    assert!(!handle.is_finished(), "the poller is still running");
    stop.cancel();
    let r = tokio::time::timeout(Duration::from_secs(5), handle).await;
    assert!(matches!(r, Ok(Ok(()))), "poller ended badly: {r:?}");
    stop_server.cancel();
    out
}

fn assert_all_failed(outs: &[PanelOutcome], fault: PanelFault, reason_has: &str) {
    for o in outs {
        match o {
            PanelOutcome::Failed { fault: f, reason } => {
                assert_eq!(*f, fault, "{reason}");
                assert!(
                    reason.contains(reason_has) || reason.contains("reconnecting"),
                    "{reason:?} lacks {reason_has:?}"
                );
            }
            PanelOutcome::Read(_) => panic!("a read succeeded against a broken server"),
        }
    }
}

#[tokio::test]
async fn the_evil_server_is_fine_when_it_behaves() {
    let outs = outcomes(|r| Reply::Send(good(r)), 2).await;
    assert!(outs.iter().all(|o| matches!(o, PanelOutcome::Read(_))), "{outs:?}");
}

#[tokio::test]
async fn garbage_bytes_are_a_protocol_fault() {
    // A complete frame whose protocol id is not Modbus.
    let outs = outcomes(|_| Reply::Send(vec![0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0x03, 0x01, 0x02, 0x03]), 3).await;
    assert_all_failed(&outs, PanelFault::Protocol, "protocol identifier");
}

#[tokio::test]
async fn text_where_frames_belong_times_out() {
    // "HTTP/1.1 …" reads as a header announcing 12081 bytes: the client waits for them until
    // the request's deadline, then drops the connection.
    let outs = outcomes(|_| Reply::Send(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()), 3).await;
    assert_all_failed(&outs, PanelFault::Unreachable, "no answer within 300 ms");
}

#[tokio::test]
async fn truncated_response_then_close_is_unreachable() {
    let outs = outcomes(|r| Reply::SendAndClose(good(r)[..9].to_vec()), 3).await;
    for o in &outs {
        assert!(
            matches!(o, PanelOutcome::Failed { fault: PanelFault::Unreachable | PanelFault::Protocol, .. }),
            "{o:?}"
        );
    }
}

#[tokio::test]
async fn truncated_response_then_silence_times_out() {
    let outs = outcomes(|r| Reply::Send(good(r)[..9].to_vec()), 3).await;
    assert_all_failed(&outs, PanelFault::Unreachable, "no answer within 300 ms");
}

#[tokio::test]
async fn oversized_length_field_times_out_without_allocating_it() {
    // Length 0xFFFF: the client waits for bytes that never come; the timeout ends it.
    let outs = outcomes(|r| Reply::Send(vec![r[0], r[1], 0, 0, 0xFF, 0xFF, r[6], 3, 2, 0, 0]), 3).await;
    assert_all_failed(&outs, PanelFault::Unreachable, "no answer within");
}

#[tokio::test]
async fn zero_length_field_is_a_protocol_fault() {
    let outs = outcomes(|r| Reply::Send(vec![r[0], r[1], 0, 0, 0, 0, r[6]]), 3).await;
    assert_all_failed(&outs, PanelFault::Protocol, "length");
}

#[tokio::test]
async fn fewer_registers_than_asked_is_a_protocol_fault() {
    let outs = outcomes(|r| Reply::Send(frame(r, &[3, 2, 0, 1])), 3).await;
    assert_all_failed(&outs, PanelFault::Protocol, "answer has 1 registers");
}

#[tokio::test]
async fn more_registers_than_asked_is_a_protocol_fault() {
    let outs = outcomes(
        |r| {
            let n = count_of(r) + 1;
            let mut pdu = vec![3, (2 * n) as u8];
            pdu.extend(std::iter::repeat_n(0u8, 2 * n));
            Reply::Send(frame(r, &pdu))
        },
        3,
    )
    .await;
    assert_all_failed(&outs, PanelFault::Protocol, "registers");
}

#[tokio::test]
async fn odd_byte_count_is_a_protocol_fault() {
    let outs = outcomes(|r| Reply::Send(frame(r, &[3, 3, 0, 1, 2])), 3).await;
    assert_all_failed(&outs, PanelFault::Protocol, "");
}

#[tokio::test]
async fn byte_count_beyond_the_frame_is_a_protocol_fault() {
    let outs = outcomes(|r| Reply::Send(frame(r, &[3, 250, 0, 1])), 3).await;
    assert_all_failed(&outs, PanelFault::Protocol, "");
}

#[tokio::test]
async fn wrong_function_code_is_a_protocol_fault() {
    let outs = outcomes(|r| Reply::Send(frame(r, &[4, 2, 0, 1])), 3).await;
    assert_all_failed(&outs, PanelFault::Protocol, "function code");
}

#[tokio::test]
async fn wrong_unit_id_is_a_protocol_fault() {
    let outs = outcomes(
        |r| {
            let mut f = good(r);
            f[6] = 99;
            Reply::Send(f)
        },
        3,
    )
    .await;
    assert_all_failed(&outs, PanelFault::Protocol, "mismatch");
}

#[tokio::test]
async fn unknown_exception_code_keeps_the_connection() {
    let outs = outcomes(|r| Reply::Send(frame(r, &[0x83, 0x77])), 3).await;
    assert_all_failed(&outs, PanelFault::Exception, "exception 119");
}

#[tokio::test]
async fn simulator_survives_garbage_from_clients() {
    use device_sim::panel::{PanelFleet, PanelKindSim, PanelSpec};
    let f = PanelFleet::start([127, 0, 0, 1].into(), vec![PanelSpec::new("p", PanelKindSim::Alarm, 1)]).await.unwrap();
    let addr = f.addr("p").unwrap();
    let garbage: [&[u8]; 5] = [
        b"GET / HTTP/1.1\r\n\r\n",
        &[0, 1, 0, 0, 0xFF, 0xFF, 1, 3],
        &[0, 1, 0, 0, 0, 1, 1],
        &[0, 1, 0, 0, 0, 2, 1],
        &[0, 1, 0, 0, 0, 6, 1, 3, 0],
    ];
    for g in garbage {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(g).await;
        let _ = s.shutdown().await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut sink)).await;
    }
    // A truncated PDU inside a well-formed frame gets exception 3, and the panel still answers.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0, 9, 0, 0, 0, 3, 1, 3, 0]).await.unwrap();
    let mut resp = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut resp)).await.unwrap().unwrap();
    assert_eq!(resp, [0, 9, 0, 0, 0, 3, 1, 0x83, 3]);
    s.write_all(&[0, 10, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1]).await.unwrap();
    let mut resp = [0u8; 11];
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut resp)).await.unwrap().unwrap();
    assert_eq!(&resp[..9], &[0, 10, 0, 0, 0, 5, 1, 3, 2]);
    f.shutdown().await;
}

#[test]
fn invalid_profiles_give_every_problem_clearly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        r#"name = "bad"
[[point]]
id = "zone.{n}"
role = "zone"
table = "holding"
address = 0
count = 4
rules = [{ value = 1, state = "alarmed" }]
default = "normal"

[[point]]
id = "door"
role = "door"
table = "coil"
address = 3
bit = 2
rules = [{ value = 1 }]

[[point]]
id = "wide"
role = "value"
table = "holding"
address = 2
type = "u32"

[[point]]
id = "x"
role = "value"
table = "holding"
address = 9
type = "float"
"#,
    )
    .unwrap();
    let errs = ProfileStore.load("bad.toml", dir.path()).unwrap_err();
    let all = errs.join("\n");
    for needle in [
        "point \"zone.1\": state \"alarmed\" is not a zone state",
        "point[1] \"door\": rule 1 references no state",
        "point[3] \"x\": unknown type \"float\"",
        "point \"wide\" overlaps point \"zone.3\" at holding 2",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    assert!(errs.iter().all(|e| e.contains("bad.toml")), "every message names the file:\n{all}");
    assert_eq!(
        errs.iter().filter(|e| e.contains("alarmed")).count(),
        1,
        "a repeated entry's mistake is told once:\n{all}"
    );
    // One string for the lead's API.
    let one = load_profile("bad.toml", dir.path()).unwrap_err();
    assert!(one.contains("alarmed") && one.contains("float"), "{one}");
    // Syntax errors name the line.
    std::fs::write(dir.path().join("syntax.toml"), "name = \"s\"\n[[point]\n").unwrap();
    let errs = ProfileStore.load("syntax.toml", dir.path()).unwrap_err();
    assert!(errs[0].contains("line 2"), "{errs:?}");
    // Unknown built-in names and missing files are told apart.
    assert!(load_profile("zone-status", dir.path()).unwrap_err().contains("neither a built-in profile"));
    assert!(load_profile("missing.toml", dir.path()).unwrap_err().contains("cannot read"));
}
