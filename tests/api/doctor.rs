//! `docket admin doctor` against real setups on both backends: a sound one passes every check,
//! and each broken part (settings, public URL, directory and key file modes, SMTP, row-level
//! security) is named, with a non-zero exit.

use std::os::unix::fs::PermissionsExt;

use crate::helpers::*;

fn doctor(app: &TestApp, env: &[(&str, &str)]) -> (bool, String, String) {
    let out = run_docket_with(
        &["admin", "doctor"],
        &app.database_url,
        &app.store.data_dir,
        env,
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The line of check `name`, which must start with `verdict`.
#[track_caller]
fn line<'a>(stdout: &'a str, verdict: &str, name: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(verdict) && l[6..].starts_with(name))
        .unwrap_or_else(|| panic!("no {verdict} line for {name} in:\n{stdout}"))
}

#[tokio::test]
async fn a_sound_setup_passes_every_check() {
    let app = spawn_app().await;
    // The test's directory is made as a server makes its own: for its account only.
    let fresh = app.store.data_dir.join("fresh/data");
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_docket"))
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .env("DOCKET_DATA_DIR", &fresh)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&fresh), 0o700);
    std::fs::set_permissions(&app.store.data_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (passed, stdout, stderr) = doctor(&app, &[]);
    assert!(passed, "{stdout}\n{stderr}");
    for name in [
        "configuration",
        "public URL",
        "data directory",
        "database",
        "migrations",
        "smtp",
        "object store",
    ] {
        line(&stdout, "ok", name);
    }
    assert!(line(&stdout, "ok", "smtp").contains("not configured"));
    assert!(line(&stdout, "ok", "object store").contains("wrote, read and deleted"));
    if backend() == Backend::Postgres {
        assert!(line(&stdout, "ok", "application role").contains("docket_app"));
        line(&stdout, "ok", "row-level security");
        assert!(line(&stdout, "ok", "database").contains("queries run as docket_app"));
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

#[tokio::test]
async fn each_broken_part_is_named() {
    let app = spawn_app().await;
    let dir = &app.store.data_dir;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let closed = free_port().to_string();
    let smtp = format!("smtp://127.0.0.1:{closed}");
    let (passed, stdout, stderr) = doctor(
        &app,
        &[
            ("DOCKET_SMTP_URL", &smtp),
            ("DOCKET_PUBLIC_URL", "http://help.example.com/docket"),
            ("DOCKET_PLANS_FILE", "/nonexistent/plans.toml"),
        ],
    );
    assert!(!passed);
    assert!(
        line(&stdout, "FAIL", "data directory").contains("chmod o-rwx"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "FAIL", "smtp").contains("did not answer"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "FAIL", "public URL").contains("without a path"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "FAIL", "configuration").contains("plans.toml"),
        "{stdout}"
    );
    line(&stdout, "ok", "database");
    assert!(
        stderr.contains("checks failed: configuration, public URL, data directory, smtp"),
        "{stderr}"
    );

    // A private directory with a key file others may read.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let key = dir.join("jwt-signing.key");
    std::fs::write(&key, "k".repeat(48)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (passed, stdout, _) = doctor(&app, &[("DOCKET_PUBLIC_URL", "http://localhost:8080")]);
    assert!(!passed);
    assert!(
        line(&stdout, "FAIL", "data directory").contains("chmod 600"),
        "{stdout}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (passed, stdout, _) = doctor(&app, &[]);
    assert!(passed, "{stdout}");
    assert!(line(&stdout, "ok", "data directory").contains("signing key file is private"));

    if backend() == Backend::Postgres {
        app.sql("ALTER TABLE tickets NO FORCE ROW LEVEL SECURITY")
            .await;
        let (passed, stdout, _) = doctor(&app, &[]);
        assert!(!passed);
        assert!(
            line(&stdout, "FAIL", "row-level security").contains("tickets"),
            "{stdout}"
        );
    }
}
