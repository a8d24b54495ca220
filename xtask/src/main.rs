//! `cargo xtask <task>`: the project's build automation (see README.md).
//!
//! Every task first installs what it needs on a fresh Debian machine (as root) or stops with a
//! one-line instruction: the `wasm32-unknown-unknown` target, ffmpeg, Chromium, npm packages.
#![allow(clippy::print_stdout)]

mod deps;
mod wasm;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Swarmcast build automation")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what the project needs (Rust wasm target, ffmpeg, npm packages; Chromium with --browser).
    Deps {
        /// Also install Chromium for the browser tests.
        #[arg(long)]
        browser: bool,
    },
    /// Build the browser agent into the npm package at client-wasm/js/ (wasm + JS glue).
    Wasm,
    /// Run the live demo on loopback and print the viewer page's URL.
    Demo {
        /// Extra arguments for `swarmcast demo` (see `swarmcast demo --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run every test: unit, integration, wasm build checks, and the browser end-to-end tests.
    Test {
        /// Skip the headless-Chromium end-to-end tests.
        #[arg(long)]
        no_e2e: bool,
    },
    /// Run only the browser end-to-end tests (in a network namespace of their own).
    E2e,
    /// Report the agent's size (wasm + JS, raw and gzip) against p2p-media-loader's.
    Size,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match cli.task {
        Task::Deps { browser } => deps::install(browser),
        Task::Wasm => {
            deps::install(false)?;
            wasm::build(&root)
        }
        Task::Demo { args } => {
            deps::install(false)?;
            wasm::build(&root)?;
            run("cargo", &["build", "-p", "swarmcast-cli"])?;
            let mut cmd = Command::new(root.join("target/debug/swarmcast"));
            cmd.arg("demo").args(&args);
            let status = cmd.status().context("starting swarmcast demo")?;
            if !status.success() {
                bail!("swarmcast demo exited with {status}");
            }
            Ok(())
        }
        Task::Test { no_e2e } => {
            deps::install(!no_e2e)?;
            wasm::build(&root)?;
            run("cargo", &["test", "--workspace"])?;
            run("node", &["--test", "client-wasm/js/test/"])?;
            run(
                "cargo",
                &[
                    "check",
                    "-p",
                    "swarmcast-protocol",
                    "-p",
                    "swarmcast-engine",
                    "-p",
                    "swarmcast-client-wasm",
                    "--target",
                    "wasm32-unknown-unknown",
                ],
            )?;
            // The fuzz targets live outside the workspace; type-check them so they cannot rot.
            run("cargo", &["check", "--manifest-path", "fuzz/Cargo.toml", "--bins"])?;
            if !no_e2e {
                e2e(&root)?;
            }
            Ok(())
        }
        Task::E2e => {
            deps::install(true)?;
            wasm::build(&root)?;
            e2e(&root)
        }
        Task::Size => {
            deps::install(false)?;
            wasm::build(&root)?;
            wasm::report_size(&root)
        }
    }
}

/// Builds the `swarmcast` binary and runs the node e2e suite inside its own network namespace.
fn e2e(root: &Path) -> Result<()> {
    run("cargo", &["build", "-p", "swarmcast-cli"])?;
    let script = root.join("tests/e2e/netns.sh");
    run("bash", &[&script.to_string_lossy()])
}

/// Runs a command, failing on a non-zero exit.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<()> {
    println!("$ {program} {}", args.join(" "));
    let status = Command::new(program).args(args).status().with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("{program} {} failed with {status}", args.join(" "));
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    // xtask lives at <root>/xtask; CARGO_MANIFEST_DIR is set by `cargo run`.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("xtask"));
    manifest.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}
