//! `hq serve` refuses a broken start-up configuration with one line that names the file, the
//! line and the fix: a branch directory that is not what it should be, a port in use, a bad
//! offset, retention below GA 38's floors; and `hq user` against a database that is not there
//! creates nothing.

use crate::hq_common;

use anyhow::Result;
use hq_common::*;

#[test]
fn broken_configuration_is_refused_at_start() -> Result<()> {
    let work = tempfile::tempdir()?;
    let cwd = work.path();
    let db = format!("sqlite://{}", cwd.join("hq.db").display());
    hq(cwd, &["migrate", "--db", &db])?;

    let cases: [(&str, &str, i32, &str); 4] = [
        ("no-id.csv", "name,region\n北京营业部,华北\n", 2, "no `id` column"),
        ("space.csv", "id,name\nbj-1,北京\nbj 2,上海\n", 2, "line 3"),
        ("twice.csv", "id\nbj-1\nbj-1\n", 2, "listed twice"),
        ("missing.csv", "", 2, "cannot read it"),
    ];
    for (file, text, want, says) in cases {
        let path = cwd.join(file);
        if !text.is_empty() {
            std::fs::write(&path, text)?;
        }
        let port = harness::free_port().to_string();
        let bind = format!("127.0.0.1:{port}");
        let (code, _, err) =
            hq_raw(cwd, &["serve", "--db", &db, "--bind", &bind, "--directory", path.to_str().unwrap_or_default()])?;
        assert_eq!(code, want, "{file}: {err}");
        assert!(err.contains(says) && err.contains(file), "{file}: {err}");
        assert_eq!(err.trim().lines().filter(|l| l.starts_with("hq:")).count(), 1, "one line: {err}");
    }

    // A port another program holds.
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let bind = taken.local_addr()?.to_string();
    let (code, _, err) = hq_raw(cwd, &["serve", "--db", &db, "--bind", &bind])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot serve on") && err.contains(&bind), "{err}");

    for (args, says) in [
        (vec!["--utc-offset", "Beijing"], "not a UTC offset"),
        (vec!["--retain-alarms", "7d", "--retain-access", "180d"], "30 days"),
        (vec!["--retain-alarms", "30d"], "go together"),
        (vec!["--bind", "localhost"], "--bind"),
    ] {
        let mut a = vec!["serve", "--db", db.as_str()];
        a.extend(args.iter().copied());
        let (code, _, err) = hq_raw(cwd, &a)?;
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }

    // `hq user` against a mistyped database path creates nothing.
    let typo = cwd.join("hq-typo.db");
    let (code, _, err) = hq_raw(cwd, &["user", "list", "--db", &format!("sqlite://{}", typo.display())])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("hq migrate"), "{err}");
    assert!(!typo.exists(), "a mistyped --db created {}", typo.display());
    Ok(())
}
