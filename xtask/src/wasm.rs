//! Builds the browser agent: cargo for wasm32, wasm-bindgen (as a library, pinned to the same
//! version as the `wasm-bindgen` crate), then `wasm-opt -Oz` from npm's binaryen.
//!
//! Debian's binaryen (108) breaks modules from this wasm-bindgen, so only the npm build is used.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::run;

const CRATE: &str = "swarmcast-client-wasm";
const ARTIFACT: &str = "target/wasm32-unknown-unknown/wasm/swarmcast_client_wasm.wasm";
const OUT_DIR: &str = "client-wasm/js/pkg";
/// wasm-opt passes after `-Oz`.
const WASM_OPT_EXTRA: &str = "--converge";
const WASM: &str = "client-wasm/js/pkg/swarmcast_client_wasm_bg.wasm";

/// Builds `client-wasm/js/pkg/` from the `client-wasm` crate.
pub(crate) fn build(root: &Path) -> Result<()> {
    run("cargo", &["build", "-p", CRATE, "--target", "wasm32-unknown-unknown", "--profile", "wasm"])?;
    let out = root.join(OUT_DIR);
    std::fs::create_dir_all(&out)?;
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(root.join(ARTIFACT))
        .web(true)
        .context("wasm-bindgen --target web")?
        .typescript(true)
        // Like the wasm-bindgen CLI: `init()` with no argument finds the .wasm beside the glue.
        .omit_default_module_path(false)
        .generate(&out)
        .context("wasm-bindgen")?;
    let wasm_opt = root.join("node_modules/.bin/wasm-opt");
    if wasm_opt.exists() {
        let wasm = root.join(WASM);
        let wasm = wasm.to_string_lossy();
        // SWARMCAST_WASM_NAMES=1 keeps function names, for `twiggy top` on the shipped module.
        let keep_names = std::env::var_os("SWARMCAST_WASM_NAMES").is_some();
        let mut args = vec!["-Oz"];
        args.extend(WASM_OPT_EXTRA.split_whitespace());
        args.extend(if keep_names { &["-g"][..] } else { &["--strip-debug", "--strip-producers"][..] });
        args.extend([
            "--enable-bulk-memory",
            "--enable-nontrapping-float-to-int",
            "--enable-reference-types",
            "--enable-sign-ext",
            "--enable-multivalue",
            "--enable-mutable-globals",
            &wasm,
            "-o",
            &wasm,
        ]);
        run(&wasm_opt.to_string_lossy(), &args)?;
    }
    Ok(())
}

/// Prints the agent's size, raw and gzip (level 9), for wasm, the wasm-bindgen glue and the adapter.
pub(crate) fn report_size(root: &Path) -> Result<()> {
    let files = [WASM, "client-wasm/js/pkg/swarmcast_client_wasm.js", "client-wasm/js/index.js"];
    let mut total = (0, 0);
    println!("| file | bytes | gzip bytes |\n|---|---:|---:|");
    for f in files {
        let bytes = std::fs::read(root.join(f)).with_context(|| format!("reading {f}"))?;
        let gz = gzip_len(&bytes)?;
        println!("| {f} | {} | {gz} |", bytes.len());
        total = (total.0 + bytes.len(), total.1 + gz);
    }
    println!("| total | {} | {} |", total.0, total.1);
    let baseline = 45 * 1024;
    println!(
        "\nagent gzip {} KB vs p2p-media-loader core + hlsjs 45 KB: ratio {:.2}",
        total.1 / 1024,
        total.1 as f64 / baseline as f64
    );
    Ok(())
}

fn gzip_len(bytes: &[u8]) -> Result<usize> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    enc.write_all(bytes)?;
    Ok(enc.finish()?.len())
}
