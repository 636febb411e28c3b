//! The web console's guards, over real HTTP against `hq serve --with-listener` on each
//! database, with a real mosquitto carrying the branch data: nothing without a session, no
//! state change without the CSRF token or from another site, hostile names shown as text, a
//! viewer cannot acknowledge, wrong passwords are rate-limited, bad input gets a clear 4xx
//! (never a 500), every acknowledgement and user change is in the audit log, and a database
//! that goes away gives a clear 503 until it is back.

use crate::hq_common;

use std::time::Duration;

use anyhow::{Context, Result};
use harness::Mosquitto;
use hq_common::*;
use protocols::{AlertState, DeviceType, GatewayState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_guards_sqlite() -> Result<()> {
    guards(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_guards_postgres() -> Result<()> {
    guards(Backend::Postgres).await
}

const HOSTILE_BRANCH: &str = "<script>alert(\"b1\")</script>";
const HOSTILE_DEVICE: &str = "<img src=x onerror=alert(1)>";

async fn guards(backend: Backend) -> Result<()> {
    let broker = Mosquitto::start()?;
    let work = tempfile::tempdir()?;
    let cwd = work.path();
    let mut db = TestDb::new(backend, cwd)?;
    let url = db.url.clone();
    hq(cwd, &["migrate", "--db", &url])?;
    for (name, role) in [("admin", "admin"), ("op", "operator"), ("viewer", "viewer"), ("victim", "viewer")] {
        add_user(cwd, &url, name, role, &format!("{name}-password-long"))?;
    }
    // Usage mistakes of `hq user`: a short password is exit 2, a second user of one name exit 1.
    std::fs::write(cwd.join("short"), "short\n")?;
    let (code, _, err) =
        hq_raw(cwd, &["user", "add", "x", "--role", "viewer", "--user-password-file", "short", "--db", &url])?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("at least 10"), "{err}");
    let (code, _, err) =
        hq_raw(cwd, &["user", "add", "admin", "--role", "viewer", "--user-password-file", "pw-admin", "--db", &url])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("exists already"), "{err}");

    let directory = write_dir(
        cwd,
        &format!("id,name,region\nb1,\"{}\",华北\nb2,Second,华东\n", HOSTILE_BRANCH.replace('"', "\"\"")),
    )?;
    let (mut console, base) = start_console(broker.port, &url, cwd, &["--directory", &directory])?;

    // A branch: gateway online, a camera with a hostile name down, its required zone
    // uncovered, an alarm while that camera is down, and a camera-offline alert.
    let mut p = Publisher::connect(broker.port, "test-b1")?;
    let now = chrono::Utc::now();
    let cam = device("cam-1", DeviceType::Camera, HOSTILE_DEVICE);
    p.gateway(&gateway("b1", GatewayState::Online, None, Some(now)))?;
    p.device(&health("b1", cam.clone(), "offline", now))?;
    p.coverage(&coverage("b1", now, &[Z("vault", "Vault", true, &["cam-1"], false)], 0))?;
    p.alert(&camera_offline("b1", 1, "cam-1", AlertState::Raised, now))?;
    p.alert(&alarm("b1", 2, now, vec![linked("cam-1", false)]))?;
    p.flush()?;

    // Without a session: pages go to the sign-in page, the API and the event stream say 401,
    // and so does every state-changing request.
    let anon = Web::new(&base)?;
    for path in [
        "/",
        "/?view=table",
        "/branch/b1",
        "/alerts",
        "/assessment",
        "/assessment.csv",
        "/admin/users",
        "/admin/audit",
        "/nowhere",
    ] {
        let r = anon.get(path).await?;
        assert_eq!(r.status, 303, "GET {path} without a session: {r:?}");
        assert!(r.location().starts_with("/login?next="), "GET {path}: {}", r.location());
    }
    for path in ["/api/overview", "/events"] {
        assert_eq!(anon.get(path).await?.status, 401, "GET {path} without a session");
    }
    for path in ["/alerts/ack", "/logout", "/settings/lang", "/admin/users", "/admin/users/update"] {
        assert_eq!(anon.post(path, &[("csrf", "x")]).await?.status, 401, "POST {path} without a session");
    }
    let health = anon.get("/health").await?;
    assert_eq!(health.status, 200, "{health:?}");
    assert!(health.body.contains("\"db\":\"ok\""), "{}", health.body);
    let login = anon.get("/login").await?;
    assert_eq!(login.status, 200);
    assert!(login.body.contains("登录"), "the sign-in page follows Accept-Language (zh-CN)");

    // Wrong passwords: five are answered, the sixth is refused even with the right password.
    let mut victim = Web::new(&base)?;
    for _ in 0..5 {
        assert_eq!(victim.login("victim", "not-the-password").await?.status, 401);
    }
    let locked = victim.login("victim", "victim-password-long").await?;
    assert_eq!(locked.status, 429, "{locked:?}");
    assert!(locked.headers.contains_key("retry-after"));
    assert!(victim.cookie.is_none());

    // A viewer sees everything, acknowledges nothing.
    let mut viewer = Web::new(&base)?;
    assert_eq!(viewer.login("viewer", "viewer-password-long").await?.status, 303);
    let alarm_id = "b1-alert-2";
    let open = eventually(Duration::from_secs(20), "the alarm is on the open list", || {
        let page = futures_block(viewer.get("/alerts?state=open"))?;
        Ok(page.body.contains(alarm_id).then_some(page))
    })?;
    assert!(!open.body.contains("name=\"comment\""), "a viewer gets no acknowledgement form");
    let csrf = viewer.csrf().await?;
    let r =
        viewer.post("/alerts/ack", &[("csrf", &csrf), ("branch", "b1"), ("id", alarm_id), ("comment", "x")]).await?;
    assert_eq!(r.status, 403, "a viewer acknowledged: {r:?}");

    // Hostile names are text.
    let overview = eventually(Duration::from_secs(20), "b1 turns red", || {
        let page = futures_block(viewer.get("/"))?;
        Ok(page.body.contains("class=\"tile red\" id=\"t-b1\"").then_some(page))
    })?;
    assert!(!overview.body.contains("<script>alert"), "{}", overview.body);
    assert!(overview.body.contains("&lt;script&gt;alert("), "{}", overview.body);
    let branch = viewer.get("/branch/b1").await?;
    assert_eq!(branch.status, 200);
    assert!(!branch.body.contains("<img src=x"), "{}", branch.body);
    assert!(branch.body.contains("&lt;img src=x onerror=alert(1)&gt;"), "{}", branch.body);
    assert!(branch.body.contains("id=\"z-vault\""), "the zone is listed");

    // An operator acknowledges, with the token, from this site, with a comment.
    let mut op = Web::new(&base)?;
    op.accept_language = "en".into();
    assert_eq!(op.login("op", "op-password-long").await?.status, 303);
    let csrf = op.csrf().await?;
    assert_eq!(ack(&op, "", alarm_id, "done", &[]).await?.status, 403, "no token");
    assert_eq!(ack(&op, "0000", alarm_id, "done", &[]).await?.status, 403, "a wrong token");
    let cross = ack(&op, &csrf, alarm_id, "done", &[("origin", "http://evil.example")]).await?;
    assert_eq!(cross.status, 403, "a request from another site: {cross:?}");
    assert_eq!(ack(&op, &csrf, alarm_id, "   ", &[]).await?.status, 400, "no comment");
    let done = ack(&op, &csrf, alarm_id, "<b>bold</b> 已处置, guard sent", &[]).await?;
    assert_eq!(done.status, 303, "{done:?}");
    let again = ack(&op, &csrf, alarm_id, "twice", &[]).await?;
    assert_eq!(again.status, 409, "{again:?}");
    assert!(again.body.contains("by op"), "says who was first: {}", again.body);
    assert_eq!(ack(&op, &csrf, "b1-alert-1", "x", &[]).await?.status, 400, "a camera-offline alert is no alarm");
    assert_eq!(ack(&op, &csrf, "no-such-alert", "x", &[]).await?.status, 404);
    let acked = op.get("/alerts?state=acked").await?;
    assert!(acked.body.contains(alarm_id), "{}", acked.body);
    assert!(acked.body.contains("&lt;b&gt;bold&lt;/b&gt; 已处置"), "{}", acked.body);
    assert!(acked.body.contains("Linked camera was down"), "{}", acked.body);
    assert!(!op.get("/alerts?state=open").await?.body.contains(alarm_id), "an acknowledged alarm leaves the open list");
    assert_eq!(op.get("/admin/users").await?.status, 403, "an operator manages no users");

    // An admin manages users; the audit log has it all.
    let mut admin = Web::new(&base)?;
    assert_eq!(admin.login("admin", "admin-password-long").await?.status, 303);
    let csrf = admin.csrf().await?;
    let r = admin
        .post("/admin/users", &[("csrf", &csrf), ("name", "newbie"), ("password", "short"), ("role", "viewer")])
        .await?;
    assert_eq!(r.status, 400, "{r:?}");
    let r = admin
        .post(
            "/admin/users",
            &[("csrf", &csrf), ("name", "newbie"), ("password", "newbie-password-1"), ("role", "operator")],
        )
        .await?;
    assert_eq!(r.status, 303, "{r:?}");
    let r = admin.post("/admin/users/update", &[("csrf", &csrf), ("name", "admin"), ("action", "disable")]).await?;
    assert_eq!(r.status, 400, "an admin cannot disable themselves");
    let audit = admin.get("/admin/audit").await?;
    for what in ["ack", "user-add", "login-failed", "login", "newbie", "b1/b1-alert-2"] {
        assert!(audit.body.contains(what), "audit log lacks {what}: {}", audit.body);
    }

    // Bad input: a clear 4xx page, never a 500.
    for (path, want) in [
        ("/branch/nope", 404),
        ("/branch/%3Cscript%3E", 404),
        ("/branch/a%20b", 404),
        ("/?state=purple", 400),
        ("/?sort=%3Cx%3E", 400),
        ("/?view=3d", 400),
        ("/alerts?limit=abc", 400),
        ("/alerts?limit=0", 400),
        ("/alerts?severity=zzz", 400),
        ("/alerts?kind=x", 400),
        ("/alerts?state=everything", 400),
        ("/alerts?branch=a%20b", 400),
        ("/assessment?from=garbage", 400),
        ("/assessment?from=2026-01-02&to=2026-01-01", 400),
        ("/assessment?from=-1000d", 400),
        ("/assessment.csv?to=yesterday", 400),
        ("/no/such/page", 404),
    ] {
        let r = admin.get(path).await?;
        assert_eq!(r.status, want, "GET {path}: {}", r.body);
        assert!(r.body.contains("<h1>"), "GET {path}: a page that says why: {}", r.body);
        assert!(!r.body.contains("<script>"), "GET {path}: {}", r.body);
    }
    let r = admin.post_with("/alerts/ack", &[], &[("content-type", "application/json")]).await?;
    assert!((400..500).contains(&r.status), "a JSON body: {r:?}");
    let csv = admin.get("/assessment.csv?from=-1h").await?;
    assert_eq!(csv.status, 200);
    assert!(csv.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().starts_with("text/csv"));
    assert!(csv.body.contains("b1"), "{}", csv.body);
    let assessment = admin.get("/assessment?from=-1h").await?;
    assert_eq!(assessment.status, 200);
    assert!(assessment.body.contains("联动摄像机当时故障") || assessment.body.contains("报警时联动摄像机故障"));

    // Language: the browser's by default, the user's choice once made.
    admin.accept_language = "en-US,en;q=0.9".into();
    assert!(admin.get("/").await?.body.contains("Every branch"));
    let r = admin.post("/settings/lang", &[("csrf", &csrf), ("lang", "zh-CN")]).await?;
    assert_eq!(r.status, 303);
    assert!(admin.get("/").await?.body.contains("全部网点"), "the user's choice wins over Accept-Language");

    // Disabling a user ends their session; signing out ends one's own.
    hq(cwd, &["user", "set", "viewer", "--disable", "--db", &url])?;
    assert_eq!(viewer.get("/").await?.status, 303, "a disabled user's session is over");
    let r = admin.post("/logout", &[("csrf", &csrf)]).await?;
    assert_eq!(r.status, 303);
    assert_eq!(admin.get("/").await?.status, 303, "signed out");

    // The database goes away: a clear 503, then back to normal.
    if let Some(pg) = db.pg.as_mut() {
        pg.stop()?;
        let r = op.get("/alerts").await?;
        assert_eq!(r.status, 503, "{r:?}");
        assert!(r.body.contains("数据库暂不可用"), "{}", r.body);
        assert_eq!(anon.get("/health").await?.status, 503);
        pg.start_again()?;
        eventually(Duration::from_secs(30), "the console reads the database again", || {
            Ok((futures_block(op.get("/alerts"))?.status == 200).then_some(()))
        })?;
    }
    assert!(console.child.try_wait()?.is_none(), "hq serve is still running");
    // An open page (its event stream) does not hold the server up when it is told to stop.
    let cookie = op.cookie.clone().context("op's session")?;
    let mut stream = reqwest::Client::new().get(format!("{base}/events")).header("cookie", cookie).send().await?;
    assert_eq!(stream.status().as_u16(), 200);
    let reader = tokio::spawn(async move { while let Ok(Some(_)) = stream.chunk().await {} });
    console.signal("TERM");
    let code = console.wait_exit(Duration::from_secs(10)).context("hq serve did not stop on SIGTERM")?;
    assert_eq!(code, 0, "{}", std::fs::read_to_string(cwd.join("hq.log"))?);
    tokio::time::timeout(Duration::from_secs(5), reader).await.context("the event stream did not end")??;
    Ok(())
}

async fn ack(web: &Web, csrf: &str, id: &str, comment: &str, headers: &[(&str, &str)]) -> Result<Page> {
    let f = [("csrf", csrf), ("branch", "b1"), ("id", id), ("comment", comment), ("back", "/alerts")];
    web.post_with("/alerts/ack", &f, headers).await
}

fn write_dir(cwd: &std::path::Path, text: &str) -> Result<String> {
    let p = cwd.join("branches.csv");
    std::fs::write(&p, text)?;
    Ok(p.to_string_lossy().into_owned())
}

/// Runs a future to completion from synchronous code inside the test's runtime.
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}
