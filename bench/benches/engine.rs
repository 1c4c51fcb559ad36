//! `cargo bench` (from `bench/`, or with `--manifest-path bench/Cargo.toml`): runs the
//! engine benchmarks, our engine beside C wslay and tungstenite on the same byte
//! streams. It is the `nwe-bench` binary (`src/main.rs`); arguments after `--` go to
//! it, e.g. `cargo bench -- --filter parse/server --time-ms 500`.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    // libtest-style flags that cargo passes to every bench target.
    let args = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench" && a != "--nocapture");
    match Command::new(env!("CARGO_BIN_EXE_nwe-bench"))
        .args(args)
        .status()
    {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("cannot run nwe-bench: {err}");
            ExitCode::FAILURE
        }
    }
}
