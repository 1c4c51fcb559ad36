//! Compiles the wslay side of the benchmarks and links the system's libwslay
//! (Debian `libwslay-dev`).
fn main() {
    println!("cargo:rerun-if-changed=src/wslay_bench.c");
    cc::Build::new()
        .file("src/wslay_bench.c")
        .opt_level(2)
        .compile("wslay_bench");
    println!("cargo:rustc-link-lib=wslay");
}
