//! Installs what the project needs on a fresh Debian machine, or says in one line what to do.

use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};

use crate::run;

/// Ensures the wasm target, ffmpeg, redis-server, npm packages and (with `browser`) Chromium are present.
pub(crate) fn install(browser: bool) -> Result<()> {
    let targets = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if !targets.contains("wasm32-unknown-unknown") {
        run("rustup", &["target", "add", "wasm32-unknown-unknown"])?;
    }
    let mut packages = Vec::new();
    if !on_path("ffmpeg") {
        packages.push("ffmpeg");
    }
    if browser && !Path::new("/usr/bin/chromium").exists() {
        packages.push("chromium");
    }
    if browser && !on_path("ip") {
        packages.push("iproute2");
    }
    // The signalling cluster tests start a throwaway broker.
    if !on_path("redis-server") {
        packages.push("redis-server");
    }
    if !on_path("npm") {
        packages.extend(["nodejs", "npm"]);
    }
    if !packages.is_empty() {
        apt_install(&packages)?;
    }
    let npm_packages = ["hls.js", "playwright-core", "binaryen", "p2p-media-loader-core", "p2p-media-loader-hlsjs"];
    if npm_packages.iter().any(|p| !Path::new("node_modules").join(p).join("package.json").exists()) {
        let args: &[&str] = if Path::new("package-lock.json").exists() {
            &["ci", "--no-audit", "--no-fund", "--ignore-scripts"]
        } else {
            &["install", "--no-audit", "--no-fund", "--ignore-scripts"]
        };
        run("npm", args)?;
    }
    Ok(())
}

fn apt_install(packages: &[&str]) -> Result<()> {
    let is_root = output("id", &["-u"]).is_some_and(|uid| uid.trim() == "0");
    if !is_root {
        bail!("missing {}: run `sudo apt-get install -y {}` and try again", packages.join(", "), packages.join(" "));
    }
    run("apt-get", &["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend_from_slice(packages);
    run("apt-get", &args)
}

fn on_path(program: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {program}")]).output().is_ok_and(|o| o.status.success())
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
