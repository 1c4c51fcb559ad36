//! Finds the system libev, checks our `#[repr(C)]` layouts against the real `ev.h`,
//! reads the header's version, and links the library. It compiles C but runs nothing
//! it compiled, so cross-compiling works (the C compiler is the target's, as the `cc`
//! crate finds it: `CC`, `CC_<target>`, `CFLAGS`, ...).
//!
//! Search order: `LIBEV_INCLUDE_DIR` / `LIBEV_LIB_DIR` (both optional, for a libev
//! installed elsewhere), then `pkg-config libev` where a `libev.pc` exists, then the
//! C compiler's standard paths (Debian's `libev-dev` ships no `.pc` file).
//!
//! - Layouts: `layouts.txt` lists each struct's fields with their C types. From it, a C
//!   file of `_Static_assert`s (ev.h's struct against a C mirror) is compiled with
//!   `-fsyntax-only`, and `abi_check.rs` in `OUT_DIR` gets constant assertions
//!   (src/lib.rs's struct against a `#[repr(C)]` mirror). A mismatch on either side
//!   fails the build instead of corrupting memory. `layouts.txt` explains why the two
//!   halves together are the whole check.
//! - Version: `ev.h`'s `EV_VERSION_MAJOR` and `EV_VERSION_MINOR`, read from the
//!   preprocessor's output (`cc -E`); `abi_check.rs` gets it as `HEADER_VERSION`, and
//!   dependent build scripts as `DEP_EV_VERSION`.
//! - docs.rs (`DOCS_RS` set) has no libev: the C half of the check and the linking are
//!   skipped there, and the version is `"unknown"`. The Rust half still runs.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const MISSING: &str = "\
libev-sys: the libev C library (header `ev.h` and `libev.so`) was not found.
Install it with `apt-get install -y libev-dev` (Debian/Ubuntu), `dnf install libev-devel`
(Fedora) or `brew install libev` (macOS); for a libev installed elsewhere set
LIBEV_INCLUDE_DIR to the folder holding ev.h and LIBEV_LIB_DIR to the folder holding
libev.so / libev.a, then build again.";

fn main() {
    println!("cargo:rerun-if-env-changed=LIBEV_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=LIBEV_LIB_DIR");
    println!("cargo:rerun-if-env-changed=LIBEV_STATIC");
    println!("cargo:rerun-if-env-changed=DOCS_RS");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=layouts.txt");

    let layouts = fs::read_to_string("layouts.txt").expect("layouts.txt is part of the crate");
    let layouts = parse_layouts(&layouts);
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    let version = if env::var_os("DOCS_RS").is_some() {
        "unknown".to_owned()
    } else {
        let (include_dirs, lib_dirs) = search_paths();
        let compiler = cc::Build::new()
            .includes(&include_dirs)
            .try_get_compiler()
            .unwrap_or_else(|e| panic!("libev-sys: no C compiler for the target: {e}"));
        let version = header_version(&compiler, &out_dir).unwrap_or_else(|detail| {
            panic!("\n\n{MISSING}\n\n(detail: {detail})\n\n");
        });
        check_layouts_in_c(&compiler, &out_dir, &layouts).unwrap_or_else(|detail| {
            panic!(
                "\n\nlibev-sys: the system's ev.h (libev {version}) lays out a watcher \
                 differently from libev-sys's declarations (layouts.txt, src/lib.rs): \
                 using it would corrupt memory.\n\n{detail}\n\n"
            );
        });
        for dir in &lib_dirs {
            println!("cargo:rustc-link-search=native={}", dir.display());
        }
        let kind = if env::var_os("LIBEV_STATIC").is_some() {
            "static"
        } else {
            "dylib"
        };
        println!("cargo:rustc-link-lib={kind}=ev");
        if let Some(dir) = include_dirs.first() {
            println!("cargo:include={}", dir.display());
        }
        version
    };
    println!("cargo:version={version}");
    let code = rust_checks(&layouts, &version);
    fs::write(out_dir.join("abi_check.rs"), code).expect("OUT_DIR is writable");
}

/// One line of `layouts.txt`: a struct and its fields as `(C type, name)`.
struct Layout {
    name: String,
    fields: Vec<(FieldType, String)>,
}

/// The field types `layouts.txt` knows, each spelled the same way in C and Rust.
#[derive(Clone, Copy)]
enum FieldType {
    Int,
    Double,
    Ptr,
    Fn,
    SigAtomic,
}

impl FieldType {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "int" => Self::Int,
            "double" => Self::Double,
            "ptr" => Self::Ptr,
            "fn" => Self::Fn,
            "sig_atomic_t" => Self::SigAtomic,
            _ => return None,
        })
    }

    fn c_field(self, name: &str) -> String {
        match self {
            Self::Int => format!("int {name};"),
            Self::Double => format!("double {name};"),
            Self::Ptr => format!("void *{name};"),
            Self::Fn => format!("void (*{name})(void);"),
            // The Rust side declares it `c_int`: the field-size check below holds
            // ev.h's `sig_atomic_t` to that.
            Self::SigAtomic => format!("int {name};"),
        }
    }

    fn rust_type(self) -> &'static str {
        match self {
            Self::Int => "::libc::c_int",
            Self::Double => "::libc::c_double",
            Self::Ptr => "*mut ::libc::c_void",
            Self::Fn => "::core::option::Option<unsafe extern \"C\" fn()>",
            Self::SigAtomic => "::libc::c_int",
        }
    }
}

/// Parses `layouts.txt` (`name: type field, type field, ...`; `#` starts a comment).
fn parse_layouts(text: &str) -> Vec<Layout> {
    let mut layouts = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let bad = |what: &str| -> ! { panic!("layouts.txt line {}: {what}: {line}", number + 1) };
        let (name, fields) = line.split_once(':').unwrap_or_else(|| bad("no `:`"));
        let fields = fields
            .split(',')
            .map(
                |field| match field.split_whitespace().collect::<Vec<_>>()[..] {
                    [ty, name] => {
                        let ty = FieldType::parse(ty).unwrap_or_else(|| bad("unknown type"));
                        (ty, name.to_owned())
                    }
                    _ => bad("a field is `type name`"),
                },
            )
            .collect();
        layouts.push(Layout {
            name: name.trim().to_owned(),
            fields,
        });
    }
    layouts
}

/// Include and library folders: the environment's, else pkg-config's, else none (the
/// compiler's and linker's standard paths).
fn search_paths() -> (Vec<PathBuf>, Vec<PathBuf>) {
    let include: Vec<PathBuf> = env::var_os("LIBEV_INCLUDE_DIR")
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let lib: Vec<PathBuf> = env::var_os("LIBEV_LIB_DIR")
        .into_iter()
        .map(PathBuf::from)
        .collect();
    if include.is_empty() && lib.is_empty() {
        if let Some(found) = pkg_config() {
            return found;
        }
    }
    (include, lib)
}

/// Include and library folders from `pkg-config libev`, when a `libev.pc` exists.
fn pkg_config() -> Option<(Vec<PathBuf>, Vec<PathBuf>)> {
    let output = Command::new("pkg-config")
        .args(["--cflags", "--libs", "libev"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let flags = String::from_utf8(output.stdout).ok()?;
    let mut include = Vec::new();
    let mut lib = Vec::new();
    for flag in flags.split_whitespace() {
        if let Some(dir) = flag.strip_prefix("-I") {
            include.push(PathBuf::from(dir));
        } else if let Some(dir) = flag.strip_prefix("-L") {
            lib.push(PathBuf::from(dir));
        }
    }
    Some((include, lib))
}

/// `ev.h`'s version as `"major.minor"`, from the preprocessor's expansion of its
/// version macros; the error is the compiler's output.
fn header_version(compiler: &cc::Tool, out_dir: &Path) -> Result<String, String> {
    let source = out_dir.join("libev_version.c");
    let marker = "libev_sys_header_version";
    let text = format!("#include <ev.h>\n{marker} EV_VERSION_MAJOR EV_VERSION_MINOR ;\n");
    fs::write(&source, text).expect("OUT_DIR is writable");
    let mut cmd = compiler.to_command();
    cmd.arg("-E").arg(&source);
    let expanded = run(cmd)?;
    // The expansion may be spread over lines, with `#` line markers between them.
    let after = expanded
        .split_once(marker)
        .ok_or_else(|| format!("no version line in the preprocessed {}", source.display()))?
        .1;
    let words: Vec<&str> = after
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace)
        .take_while(|word| *word != ";")
        .collect();
    match words[..] {
        [major, minor] if [major, minor].iter().all(|n| n.parse::<u32>().is_ok()) => {
            Ok(format!("{major}.{minor}"))
        }
        _ => Err(format!(
            "ev.h's EV_VERSION_MAJOR / EV_VERSION_MINOR are not numbers: {words:?}"
        )),
    }
}

/// Compiles (syntax and semantics only, no object, nothing run) the `_Static_assert`s
/// that hold ev.h's structs to `layouts.txt`; the error is the compiler's output.
fn check_layouts_in_c(
    compiler: &cc::Tool,
    out_dir: &Path,
    layouts: &[Layout],
) -> Result<(), String> {
    let mut c = String::from(
        "/* Generated by libev-sys's build.rs from layouts.txt; do not edit. */\n\
         #include <stddef.h>\n#include <signal.h>\n#include <ev.h>\n",
    );
    for Layout { name, fields } in layouts {
        let mirror = format!("struct libev_sys_mirror_{name}");
        let body: String = fields
            .iter()
            .map(|(ty, field)| format!(" {}", ty.c_field(field)))
            .collect();
        let _ = writeln!(c, "{mirror} {{{body} }};");
        let what = "differs from libev-sys's declaration";
        let _ = writeln!(
            c,
            "_Static_assert(sizeof({name}) == sizeof({mirror}), \"size of {name} {what}\");"
        );
        let _ = writeln!(
            c,
            "_Static_assert(_Alignof({name}) == _Alignof({mirror}), \"alignment of {name} {what}\");"
        );
        for (_, field) in fields {
            let _ = writeln!(
                c,
                "_Static_assert(offsetof({name}, {field}) == offsetof({mirror}, {field}), \
                 \"offset of {name}.{field} {what}\");"
            );
            let _ = writeln!(
                c,
                "_Static_assert(sizeof((({name} *)0)->{field}) == sizeof((({mirror} *)0)->{field}), \
                 \"size of {name}.{field} {what}\");"
            );
        }
    }
    let source = out_dir.join("libev_layouts.c");
    fs::write(&source, c).expect("OUT_DIR is writable");
    let mut cmd = compiler.to_command();
    if compiler.is_like_msvc() {
        cmd.args(["/std:c11", "/Zs"]);
    } else {
        cmd.arg("-fsyntax-only");
    }
    cmd.arg(&source);
    run(cmd).map(drop)
}

/// Runs the compiler; its standard output, or its diagnostics as the error.
fn run(mut cmd: Command) -> Result<String, String> {
    let output = cmd
        .output()
        .map_err(|e| format!("could not run the C compiler {cmd:?}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// `abi_check.rs`: `HEADER_VERSION`, a `#[repr(C)]` mirror of each struct in
/// `layouts.txt`, and constant assertions holding src/lib.rs's structs to the mirrors.
fn rust_checks(layouts: &[Layout], version: &str) -> String {
    let mut code = format!(
        "// Generated by build.rs from layouts.txt; do not edit.\n\
         /// The libev version of the `ev.h` this crate was built against, as \
         `\"major.minor\"` (`\"unknown\"` in documentation built on docs.rs).\n\
         pub const HEADER_VERSION: &str = \"{version}\";\n\n\
         #[allow(dead_code, non_camel_case_types)]\nmod layout_mirror {{\n"
    );
    for Layout { name, fields } in layouts {
        let _ = writeln!(code, "    #[repr(C)]\n    pub(super) struct {name} {{");
        for (ty, field) in fields {
            let _ = writeln!(code, "        pub(super) {field}: {},", ty.rust_type());
        }
        code.push_str("    }\n");
    }
    code.push_str("}\n\n");
    for Layout { name, fields } in layouts {
        let mirror = format!("layout_mirror::{name}");
        let what = "differs from layouts.txt";
        for query in ["size_of", "align_of"] {
            let _ = writeln!(
                code,
                "const _: () = assert!(::core::mem::{query}::<{name}>() == ::core::mem::{query}::<{mirror}>(), \
                 \"{query} of `{name}` {what}\");"
            );
        }
        for (_, field) in fields {
            let _ = writeln!(
                code,
                "const _: () = assert!(::core::mem::offset_of!({name}, {field}) == \
                 ::core::mem::offset_of!({mirror}, {field}), \"offset of `{name}.{field}` {what}\");"
            );
        }
    }
    code
}
