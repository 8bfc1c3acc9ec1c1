//! Builds the web app (`web/`) into `web/dist`, which the binary embeds and serves at `/`.
//!
//! Runs `npm ci` when the lock file changed (or nothing is installed) and then Vite, whenever
//! anything the app is built from changed. Node.js 20+ with npm is needed; without it the build
//! stops here and says so. `DOCKET_SKIP_WEB_BUILD=1` reuses an existing `web/dist` (for a
//! machine that builds the server only, from a tree where the app was built before).

use std::{
    path::Path,
    process::{Command, exit},
};

fn main() {
    for input in [
        "web/src",
        "web/public",
        "web/index.html",
        "web/package.json",
        "web/package-lock.json",
        "web/vite.config.ts",
        "web/tsconfig.json",
        "web/scripts/bundle-size.mjs",
    ] {
        println!("cargo:rerun-if-changed={input}");
    }
    println!("cargo:rerun-if-env-changed=DOCKET_SKIP_WEB_BUILD");

    let web = Path::new("web");
    if std::env::var_os("DOCKET_SKIP_WEB_BUILD").is_some_and(|v| v != "0") {
        if web.join("dist/index.html").exists() {
            return;
        }
        fail("DOCKET_SKIP_WEB_BUILD is set but web/dist holds no built app; unset it to build");
    }
    if Command::new("npm").arg("--version").output().is_err() {
        fail(
            "Node.js 20+ and npm are needed to build the web app in web/ (for example \
             `apt-get install nodejs npm`), and were not found on PATH",
        );
    }
    let installed = web.join("node_modules/.package-lock.json");
    if is_older(&installed, &web.join("package-lock.json")) {
        run(web, &["ci", "--no-audit", "--no-fund"]);
    }
    run(web, &["run", "build:app"]);
}

/// True when `target` is missing or older than `source`.
fn is_older(target: &Path, source: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(target), modified(source)) {
        (Some(t), Some(s)) => t < s,
        _ => true,
    }
}

fn run(dir: &Path, args: &[&str]) {
    // npm's output goes to stderr: a build script's stdout is read by cargo.
    let status = Command::new("npm")
        .args(args)
        .current_dir(dir)
        .stdout(std::io::stderr())
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => fail(&format!("`npm {}` in web/ failed ({s})", args.join(" "))),
        Err(err) => fail(&format!(
            "`npm {}` in web/ could not start: {err}",
            args.join(" ")
        )),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: building the web app: {message}");
    exit(1);
}
