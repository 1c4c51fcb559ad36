//! The C API (feature `capi`) from C: the header against the Rust exports, the
//! structs' layouts as the C compiler sees them, the ownership rules in C
//! (`tests/capi/ownership.c`), and the C examples (`examples/c/`) against our Rust
//! peers over loopback. The static library is built by `cargo rustc` into this
//! test's own target folder; the C programs with the system `cc` (or `$CC`).
#![cfg(feature = "capi")]

mod util;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ffi::{c_uint, c_void, CStr};
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::rc::Rc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use net_websocket_ev::capi::{
    inject_panic_for_tests, nwe_callbacks, nwe_last_panic, nwe_params, nwe_queue_msg, nwe_release,
    nwe_server_new, nwe_status_code_sent, nwe_ws, NWE_ECLOSED, NWE_EPANIC, NWE_OK, NWE_OP_TEXT,
};
use net_websocket_ev::ev::Loop;
use net_websocket_ev::handshake::ClientRequest;
use net_websocket_ev::websocket::upgrade;
use net_websocket_ev::{Client, OpCode, Params, Server, WebSocket};
use util::{deadline, run_until};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: impl AsRef<Path>) -> String {
    let path = manifest_dir().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The static library, built once per test run into this test's target folder (its
/// own, so that the nested cargo does not wait for the lock of the outer one).
fn library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("capi-lib");
        let status = Command::new(env!("CARGO"))
            .current_dir(manifest_dir())
            .env("CARGO_INCREMENTAL", "0")
            .args([
                "rustc",
                "--lib",
                "--no-default-features",
                "--features",
                "capi",
            ])
            .args(["--crate-type", "staticlib", "--target-dir"])
            .arg(&target)
            .status()
            .expect("run cargo rustc");
        assert!(status.success(), "building the static library failed");
        target.join("debug").join("libnet_websocket_ev.a")
    })
}

/// Compiles one C file against the header and the static library, once per run
/// (tests running at the same time share the program).
fn compile(source: &str, std: &str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(program) = built.get(source) {
        return program.clone();
    }
    let program = compile_now(source, std);
    built.insert(source.to_owned(), program.clone());
    program
}

fn compile_now(source: &str, std: &str) -> PathBuf {
    let source = manifest_dir().join(source);
    let name = source.file_stem().expect("file name").to_owned();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("capi-bin");
    std::fs::create_dir_all(&out).expect("create the output folder");
    // Test processes (nextest runs one per test) build the same programs at the
    // same time: each links to a name of its own, then renames it into place, so
    // that no process runs a program another is writing (ETXTBSY) or half written.
    let out = out.join(name);
    let mut partial = out.clone().into_os_string();
    partial.push(format!(".{}.partial", std::process::id()));
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".to_owned()));
    cc.args([std, "-Wall", "-Wextra", "-Werror", "-g", "-o"])
        .arg(&partial)
        .arg(&source)
        .arg("-I")
        .arg(manifest_dir().join("src/capi"));
    if let Ok(dir) = std::env::var("LIBEV_INCLUDE_DIR") {
        cc.arg("-I").arg(dir);
    }
    cc.arg(library());
    if let Ok(dir) = std::env::var("LIBEV_LIB_DIR") {
        cc.arg("-L").arg(dir);
    }
    let status = cc
        .args(["-lev", "-lpthread", "-ldl", "-lm"])
        .status()
        .expect("run the C compiler (cc)");
    assert!(status.success(), "compiling {} failed", source.display());
    std::fs::rename(&partial, &out).expect("move the program into place");
    out
}

/// Waits for `child` to exit, at most [`deadline()`] (then kills it and fails).
fn wait_bounded(child: &mut Child, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > deadline() {
            child.kill().ok();
            panic!("{what} did not exit within {:?}", deadline());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a program to its end, bounded by [`deadline()`].
fn run_bounded(cmd: &mut Command, what: &str) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let readers = (
        std::thread::spawn(move || {
            let mut s = Vec::new();
            stdout.read_to_end(&mut s).ok();
            s
        }),
        std::thread::spawn(move || {
            let mut s = Vec::new();
            stderr.read_to_end(&mut s).ok();
            s
        }),
    );
    let status = wait_bounded(&mut child, what);
    Output {
        status,
        stdout: readers.0.join().expect("stdout reader"),
        stderr: readers.1.join().expect("stderr reader"),
    }
}

// ---- the header against the Rust side ------------------------------------------

/// A declaration: a function's or function type's return and parameter types, or a
/// struct's field types by name, in C spelling, normalised.
type Decls = BTreeMap<String, Vec<String>>;

/// Spaces around every `*`, single spaces: `const uint8_t **` is `const uint8_t * *`.
fn norm(s: &str) -> String {
    s.replace('*', " * ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The C spelling of a Rust type of the C API.
fn c_type(rust: &str) -> String {
    let t = rust.trim();
    if let Some(rest) = t.strip_prefix("*mut ") {
        return norm(&format!("{} *", c_type(rest)));
    }
    if let Some(rest) = t.strip_prefix("*const ") {
        return norm(&format!("const {} *", c_type(rest)));
    }
    if let Some(inner) = t.strip_prefix("Option<").and_then(|r| r.strip_suffix('>')) {
        return c_type(inner); // a nullable function pointer
    }
    let c = match t {
        "c_int" => "int",
        "c_uint" => "unsigned",
        "c_char" => "char",
        "c_void" | "()" => "void",
        "u8" => "uint8_t",
        "u32" => "uint32_t",
        "u64" => "uint64_t",
        "usize" => "size_t",
        "f64" => "double",
        "sys::ev_loop" => "struct ev_loop",
        t if t.starts_with("nwe_") => t,
        t => panic!("no C spelling for the Rust type {t:?}: extend c_type()"),
    };
    c.to_owned()
}

/// Splits a parameter list at its top-level commas.
fn split_params(list: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, ch) in list.char_indices() {
        match ch {
            '<' | '(' => depth += 1,
            '>' | ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&list[start..]);
    out.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// `(params) -> ret` of Rust, as `[ret, params...]` in C.
fn rust_signature(params: &str, ret: Option<&str>) -> Vec<String> {
    let mut sig = vec![c_type(ret.unwrap_or("()"))];
    for param in split_params(params) {
        // `name: Type` in a function, `Type` alone in a function type.
        let ty = param.split_once(':').map_or(param, |(_, ty)| ty);
        sig.push(c_type(ty));
    }
    sig
}

/// The text between the `(` at `open` and its matching `)`, and the index after it.
fn parenthesised(text: &str, open: usize) -> (&str, usize) {
    let mut depth = 0;
    for (i, ch) in text[open..].char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return (&text[open + 1..open + i], open + i + 1);
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses");
}

/// What the Rust sources of the C API export: functions, function types, structs,
/// constants.
fn rust_side() -> (Decls, Decls, BTreeMap<String, i64>) {
    let mut fns = Decls::new();
    let mut structs = Decls::new();
    let mut consts = BTreeMap::new();
    for file in [
        "src/capi/mod.rs",
        "src/capi/connection.rs",
        "src/capi/control.rs",
        "src/capi/handshake.rs",
        "src/capi/send.rs",
        "src/capi/state.rs",
    ] {
        let text = read(file);
        // `pub [unsafe] extern "C" fn name(params) -> ret {` and
        // `pub type name = unsafe extern "C" fn(params) -> ret;`
        let mut rest = text.as_str();
        while let Some(at) = rest.find("extern \"C\" fn") {
            let line = &rest[rest[..at].rfind('\n').map_or(0, |n| n + 1)..at];
            if line.trim_start().starts_with("//") {
                rest = &rest[at + 1..]; // a doc example's own callback
                continue;
            }
            let line_start = rest[..at].rfind("pub ").expect("pub before extern");
            let head = &rest[line_start..at];
            let after = &rest[at + "extern \"C\" fn".len()..];
            let open = after.find('(').expect("(");
            let (params, end) = parenthesised(after, open);
            let tail = after[end..].trim_start();
            let stop = tail.find(['{', ';']).expect("{ or ;");
            let ret = tail[..stop].trim().strip_prefix("->").map(str::trim);
            let name = if let Some(alias) = head.strip_prefix("pub type ") {
                alias.split('=').next().expect("type name").trim()
            } else {
                after[..open].trim()
            };
            if !name.starts_with('$') {
                // (`$name` is the macro below, whose calls are listed there.)
                fns.insert(name.to_owned(), rust_signature(params, ret));
            }
            rest = &after[end..];
        }
        // The calls made by the `direction_calls!` macro: `nwe_x => method;`.
        if let Some(at) = text.find("direction_calls! {") {
            let body = &text[at..text[at..].find("\n}").map(|e| at + e).expect("}")];
            for line in body.lines().map(str::trim) {
                if let Some((name, _)) = line.split_once(" => ") {
                    fns.insert(
                        name.to_owned(),
                        rust_signature("ws: *mut nwe_ws", Some("c_int")),
                    );
                }
            }
        }
        // `#[repr(C)]` structs: `pub name: Type,` fields.
        let mut rest = text.as_str();
        while let Some(at) = rest.find("#[repr(C)]") {
            let after = &rest[at..];
            let open = after.find("pub struct ").expect("struct") + "pub struct ".len();
            let brace = after.find('{').expect("{");
            let name = after[open..brace].trim().to_owned();
            let close = after.find("\n}").expect("}");
            let fields = after[brace + 1..close]
                .lines()
                .map(str::trim)
                .filter_map(|l| l.strip_prefix("pub "))
                .map(|l| {
                    let (field, ty) = l.trim_end_matches(',').split_once(':').expect("field");
                    format!("{} {}", c_type(ty), field.trim())
                })
                .collect();
            structs.insert(name, fields);
            rest = &after[close..];
        }
        for line in text.lines() {
            let Some(decl) = line.strip_prefix("pub const NWE_") else {
                continue;
            };
            let (name, value) = decl.split_once(':').expect("const name");
            let value = value.split_once('=').expect("const value").1;
            let value = value.trim().trim_end_matches(';');
            consts.insert(
                format!("NWE_{name}"),
                value.parse().expect("an integer constant"),
            );
        }
    }
    (fns, structs, consts)
}

/// A C declaration `type name` (or a `void` parameter list) split into type.
fn c_param_type(param: &str) -> String {
    let tokens: Vec<&str> = param.split_whitespace().collect();
    assert!(tokens.len() >= 2, "unnamed C parameter {param:?}: name it");
    tokens[..tokens.len() - 1].join(" ")
}

/// What the header declares: functions, function types, structs, constants.
fn header_side() -> (Decls, Decls, BTreeMap<String, i64>) {
    let text = read("src/capi/net_websocket_ev.h");
    // Comments out; preprocessor lines out (defines kept aside).
    let mut no_comments = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("/*") {
        no_comments.push_str(&rest[..at]);
        let end = rest[at..].find("*/").expect("*/");
        rest = &rest[at + end + 2..];
    }
    no_comments.push_str(rest);
    let mut consts = BTreeMap::new();
    let mut code = String::new();
    let mut in_cplusplus = false;
    for line in no_comments.lines().map(str::trim) {
        if line == "#ifdef __cplusplus" {
            in_cplusplus = true;
        } else if in_cplusplus {
            in_cplusplus = line != "#endif";
        } else if let Some(define) = line.strip_prefix("#define NWE_") {
            let (name, value) = define.split_once(' ').expect("#define NAME VALUE");
            let value = value.trim().trim_start_matches('(').trim_end_matches(')');
            consts.insert(
                format!("NWE_{name}"),
                value.parse().expect("an integer #define"),
            );
        } else if !line.starts_with('#') {
            code.push_str(line);
            code.push(' ');
        }
    }
    let mut fns = Decls::new();
    let mut structs = Decls::new();
    let mut rest = code.as_str();
    while let Some(end) = rest.find(';') {
        let mut stmt = rest[..end].trim();
        rest = &rest[end + 1..];
        if stmt.starts_with("typedef struct") && stmt.contains('{') {
            // Up to the closing brace and the typedef name.
            let full_end = rest.find('}').expect("}");
            let body = format!("{stmt};{}", &rest[..full_end]);
            rest = &rest[full_end..];
            let after = rest.find(';').expect(";");
            let name = rest[1..after].trim().to_owned();
            rest = &rest[after + 1..];
            let open = body.find('{').expect("{");
            let fields = body[open + 1..]
                .split(';')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(|f| {
                    let f = norm(f);
                    let (ty, field) = f.rsplit_once(' ').expect("type field");
                    format!("{ty} {field}")
                })
                .collect();
            structs.insert(name, fields);
            continue;
        }
        if stmt.starts_with("typedef struct") || stmt.starts_with("struct ") {
            continue; // an opaque type
        }
        let is_fn_type = stmt.starts_with("typedef ");
        if is_fn_type {
            stmt = stmt.trim_start_matches("typedef ");
        }
        let open = stmt.find('(').expect("a prototype");
        let (ret, name, params) = if is_fn_type {
            // `ret (*name)(params)`
            let (inner, after) = parenthesised(stmt, open);
            let name = inner.trim_start_matches('*').trim();
            let params_open = stmt[after..].find('(').expect("(") + after;
            (&stmt[..open], name, parenthesised(stmt, params_open).0)
        } else {
            let head = norm(&stmt[..open]);
            let (ret, name) = head.rsplit_once(' ').expect("ret name");
            let (params, _) = parenthesised(stmt, open);
            fns.insert(name.to_owned(), Vec::new());
            let ret = ret.to_owned();
            let mut sig = vec![norm(&ret)];
            sig.extend(
                split_params(params)
                    .into_iter()
                    .filter(|p| p.trim() != "void")
                    .map(|p| norm(&c_param_type(&norm(p)))),
            );
            fns.insert(name.to_owned(), sig);
            continue;
        };
        let mut sig = vec![norm(ret)];
        sig.extend(
            split_params(params)
                .into_iter()
                .filter(|p| p.trim() != "void")
                .map(|p| norm(&c_param_type(&norm(p)))),
        );
        fns.insert(name.to_owned(), sig);
    }
    (fns, structs, consts)
}

#[test]
fn the_header_declares_exactly_what_the_library_exports() {
    let (rust_fns, rust_structs, rust_consts) = rust_side();
    let (c_fns, c_structs, c_consts) = header_side();
    assert!(
        rust_fns.len() > 50,
        "parsed too few Rust functions: {rust_fns:?}"
    );
    for (name, sig) in &rust_fns {
        assert_eq!(
            c_fns.get(name),
            Some(sig),
            "{name}: the header disagrees with Rust"
        );
    }
    for name in c_fns.keys() {
        assert!(rust_fns.contains_key(name), "{name} is in the header only");
    }
    assert_eq!(c_structs, rust_structs, "struct fields differ");
    assert_eq!(c_consts, rust_consts, "constants differ");
}

#[test]
fn the_header_parser_sees_a_changed_prototype() {
    // The comparison above fails on a drift: a parameter's type changed in the header.
    let (rust_fns, _, _) = rust_side();
    let (mut c_fns, _, _) = header_side();
    let sig = c_fns.get_mut("nwe_queue_msg").expect("declared");
    sig[2] = "int".to_owned();
    assert_ne!(c_fns.get("nwe_queue_msg"), rust_fns.get("nwe_queue_msg"));
}

#[test]
fn the_structs_have_the_same_layout_in_c() {
    let program = compile("tests/capi/layout.c", "-std=c11");
    let out = run_bounded(&mut Command::new(program), "layout");
    assert!(out.status.success());
    let c: BTreeMap<String, String> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    // Offsets from field addresses of real values: no unsafe needed.
    let params = nwe_params {
        buffering: 1,
        max_recv_size: 0,
        close_timeout: 0.0,
        idle_timeout: 0.0,
        keepalive: 0.0,
        message_timeout: 0.0,
        max_fragments: 0,
        max_queued_bytes: 0,
        fragment_size: 1,
        allowed_rsv: 0,
    };
    let callbacks = nwe_callbacks {
        user: std::ptr::null_mut(),
        on_msg_recv: None,
        on_frame_recv_start: None,
        on_frame_recv_chunk: None,
        on_frame_recv_end: None,
        on_close: None,
        genmask: None,
    };
    fn offset<S, F>(s: &S, f: &F) -> String {
        (f as *const F as usize - s as *const S as usize).to_string()
    }
    let layout = |size: usize, align: usize| format!("{size} {align}");
    let mut rust = BTreeMap::new();
    rust.insert(
        "nwe_params".to_owned(),
        layout(
            std::mem::size_of::<nwe_params>(),
            std::mem::align_of::<nwe_params>(),
        ),
    );
    let p = &params;
    for (name, at) in [
        ("buffering", offset(p, &p.buffering)),
        ("max_recv_size", offset(p, &p.max_recv_size)),
        ("close_timeout", offset(p, &p.close_timeout)),
        ("idle_timeout", offset(p, &p.idle_timeout)),
        ("keepalive", offset(p, &p.keepalive)),
        ("message_timeout", offset(p, &p.message_timeout)),
        ("max_fragments", offset(p, &p.max_fragments)),
        ("max_queued_bytes", offset(p, &p.max_queued_bytes)),
        ("fragment_size", offset(p, &p.fragment_size)),
        ("allowed_rsv", offset(p, &p.allowed_rsv)),
    ] {
        rust.insert(format!("nwe_params.{name}"), at);
    }
    rust.insert(
        "nwe_callbacks".to_owned(),
        layout(
            std::mem::size_of::<nwe_callbacks>(),
            std::mem::align_of::<nwe_callbacks>(),
        ),
    );
    let cb = &callbacks;
    for (name, at) in [
        ("user", offset(cb, &cb.user)),
        ("on_msg_recv", offset(cb, &cb.on_msg_recv)),
        ("on_frame_recv_start", offset(cb, &cb.on_frame_recv_start)),
        ("on_frame_recv_chunk", offset(cb, &cb.on_frame_recv_chunk)),
        ("on_frame_recv_end", offset(cb, &cb.on_frame_recv_end)),
        ("on_close", offset(cb, &cb.on_close)),
        ("genmask", offset(cb, &cb.genmask)),
    ] {
        rust.insert(format!("nwe_callbacks.{name}"), at);
    }
    assert_eq!(c, rust);
}

// ---- the ownership rules, in C ----------------------------------------------------

#[test]
fn ownership_rules_hold_in_c() {
    let program = compile("tests/capi/ownership.c", "-std=c99");
    let out = run_bounded(&mut Command::new(program), "ownership");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for check in [
        "release_inside_a_callback",
        "calls_after_the_end",
        "producer_that_errors",
        "reentrant_queue_and_close",
        "release_while_open",
        "bad_arguments",
        "handshakes",
    ] {
        assert!(
            stdout.contains(&format!("ok {check}\n")),
            "{check} missing: {stdout}"
        );
    }
    assert!(stdout.ends_with("all ok\n"));
}

/// A message as received: its opcode and payload.
type Message = (OpCode, Vec<u8>);

// ---- the C examples against our Rust peers --------------------------------------------

/// The C echo server on a free port, killed (by PID) if still running when dropped.
struct CServer {
    child: Child,
    port: u16,
}

impl CServer {
    fn start(args: &[&str]) -> CServer {
        let program = compile("examples/c/echo_server.c", "-std=c99");
        let mut child = Command::new(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the C echo server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the server's first line");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        CServer { child, port }
    }
}

impl Drop for CServer {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}

#[test]
fn the_c_echo_server_echoes_for_a_rust_client() {
    let mut server = CServer::start(&["-n", "1"]);
    let lp = Loop::new().expect("loop");
    let url = format!("ws://127.0.0.1:{}/echo", server.port);
    let (request, host, port) = ClientRequest::from_url(&url).expect("url");
    let stream = TcpStream::connect((host.as_str(), port)).expect("connect");
    let got: Rc<RefCell<Vec<Message>>> = Rc::default();
    let code = Rc::new(Cell::new(0));
    let ws = Rc::new(RefCell::new(None));
    let (g, c, slot) = (got.clone(), code.clone(), ws.clone());
    upgrade::upgrade(&lp, stream, &request, Default::default(), move |result| {
        let params = result
            .expect("handshake with the C server")
            .into_params()
            .on_msg_recv(move |_, _, op, msg, _| g.borrow_mut().push((op, msg.to_vec())))
            .on_close(move |_, code| c.set(code));
        *slot.borrow_mut() = Some(Client::new(params).expect("client"));
    });
    run_until(&lp, "the handshake", || ws.borrow().is_some());
    let ws = ws.borrow().clone().expect("connected");
    let text = "x".repeat(32);
    let binary: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
    let large: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    ws.queue_text(&text).unwrap();
    ws.queue_binary(&binary).unwrap();
    ws.queue_binary(&large).unwrap();
    ws.queue_msg("h\u{e9}llo".as_bytes(), OpCode::Text).unwrap();
    run_until(&lp, "four echoes", || got.borrow().len() == 4);
    assert_eq!(
        *got.borrow(),
        [
            (OpCode::Text, text.into_bytes()),
            (OpCode::Binary, binary),
            (OpCode::Binary, large),
            (OpCode::Text, "h\u{e9}llo".as_bytes().to_vec()),
        ]
    );
    ws.close(Some(1000), "done").unwrap();
    run_until(&lp, "the close", || code.get() != 0);
    assert_eq!(code.get(), 1000);
    let status = wait_bounded(&mut server.child, "the C echo server (-n 1)");
    assert!(status.success(), "the C echo server exited with {status}");
}

#[test]
fn the_c_echo_server_closes_on_command() {
    let mut server = CServer::start(&["--commands", "--max-connections", "1"]);
    let lp = Loop::new().expect("loop");
    let url = format!("ws://127.0.0.1:{}/", server.port);
    let (request, host, port) = ClientRequest::from_url(&url).expect("url");
    let stream = TcpStream::connect((host.as_str(), port)).expect("connect");
    let closed = Rc::new(RefCell::new(None));
    let c = closed.clone();
    upgrade::upgrade(&lp, stream, &request, Default::default(), move |result| {
        let params = result
            .expect("handshake")
            .into_params()
            .on_close(move |ws, code| {
                *c.borrow_mut() = Some((code, ws.close_reason_received()));
            });
        let ws = Client::new(params).expect("client");
        ws.queue_text("!close 4002 server says bye").unwrap();
    });
    run_until(&lp, "the server's close", || closed.borrow().is_some());
    assert_eq!(
        *closed.borrow(),
        Some((4002, Some("server says bye".to_owned())))
    );
    let status = wait_bounded(&mut server.child, "the C echo server (-n 1)");
    assert!(status.success(), "the C echo server exited with {status}");
}

#[test]
fn the_c_echo_server_answers_a_bad_request_with_an_http_error() {
    let server = CServer::start(&[]);
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    std::io::Write::write_all(&mut stream, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    stream.set_read_timeout(Some(deadline())).unwrap();
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the answer, then EOF");
    assert!(
        answer.starts_with(b"HTTP/1.1 4"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[test]
fn the_c_client_talks_to_a_rust_echo_server() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    // The Rust echo server: one connection, on its own thread's loop.
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let lp = Loop::new().expect("loop");
        let code = Rc::new(Cell::new(0));
        let c = code.clone();
        upgrade::accept(&lp, stream, Default::default(), move |result| {
            let params = result
                .expect("handshake with the C client")
                .into_params()
                .on_msg_recv(|ws, _, op, msg, _| {
                    ws.queue_msg(msg, op).ok();
                })
                .on_close(move |_, code| c.set(code));
            Server::new(params).expect("server");
        });
        run_until(&lp, "the C client's close", || code.get() != 0);
        code.get()
    });
    let program = compile("examples/c/client.c", "-std=c99");
    let url = format!("ws://127.0.0.1:{port}/chat");
    let out = run_bounded(
        Command::new(program).args([url.as_str(), "hello", "w\u{f6}rld"]),
        "the C client",
    );
    assert!(
        out.status.success(),
        "the C client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\nw\u{f6}rld\n");
    assert_eq!(server.join().expect("server thread"), 1000);
}

// ---- a panic at the boundary ----------------------------------------------------------

/// Counts the `on_msg_recv` calls that reached "C" (`user` is a `Cell<u32>`).
extern "C" fn count_msg(
    _ws: *mut nwe_ws,
    user: *mut c_void,
    _rsv: c_uint,
    _opcode: c_uint,
    _msg: *const u8,
    _len: usize,
    _status: c_uint,
) {
    // SAFETY: `user` is the `Cell<u32>` the test passed, alive for the test.
    let calls = unsafe { &*(user as *const Cell<u32>) };
    calls.set(calls.get() + 1);
}

/// A C API server on `lp` for one end of a socket pair, a Rust client at the other
/// (whose `on_close` code lands in the returned cell).
fn c_server_and_rust_peer(
    lp: &Loop,
    callbacks: &nwe_callbacks,
) -> (*mut nwe_ws, WebSocket, Rc<Cell<u16>>) {
    let (ours, theirs) = UnixStream::pair().expect("socket pair");
    let code = Rc::new(Cell::new(0));
    let c = code.clone();
    let peer = Client::new(
        Params::new(theirs)
            .event_loop(lp)
            .on_close(move |_, code| c.set(code)),
    )
    .expect("peer");
    let mut ws = std::ptr::null_mut();
    // SAFETY: `lp` is a loop of this thread that outlives the connection (the test
    // ends it before dropping `lp`); the fd is handed over; `callbacks` is valid.
    let rc = unsafe {
        nwe_server_new(
            lp.as_raw(),
            ours.into_raw_fd(),
            std::ptr::null(),
            callbacks,
            std::ptr::null(),
            0,
            &mut ws,
        )
    };
    assert_eq!(rc, NWE_OK);
    (ws, peer, code)
}

#[test]
fn a_panic_in_an_entry_point_closes_with_1011_and_is_reported() {
    let lp = Loop::new().expect("loop");
    let callbacks = nwe_callbacks {
        user: std::ptr::null_mut(),
        on_msg_recv: None,
        on_frame_recv_start: None,
        on_frame_recv_chunk: None,
        on_frame_recv_end: None,
        on_close: None,
        genmask: None,
    };
    let (ws, _peer, code) = c_server_and_rust_peer(&lp, &callbacks);
    inject_panic_for_tests();
    // SAFETY: `ws` is a live handle until its release below; the message is 1 byte.
    unsafe {
        assert_eq!(nwe_queue_msg(ws, NWE_OP_TEXT, b"x".as_ptr(), 1), NWE_EPANIC);
        let text = CStr::from_ptr(nwe_last_panic(ws)).to_str().unwrap();
        assert!(text.contains("injected"), "{text}");
    }
    run_until(&lp, "the peer's close", || code.get() != 0);
    assert_eq!(code.get(), 1011);
    // SAFETY: as above; the connection ended, the handle still answers.
    unsafe {
        assert_eq!(
            nwe_queue_msg(ws, NWE_OP_TEXT, b"x".as_ptr(), 1),
            NWE_ECLOSED
        );
        assert_eq!(nwe_status_code_sent(ws), 1011);
        nwe_release(ws);
    }
}

#[test]
fn a_panic_in_a_callback_trampoline_closes_with_1011_and_skips_the_c_callback() {
    let lp = Loop::new().expect("loop");
    let calls = Cell::new(0u32);
    let callbacks = nwe_callbacks {
        user: &calls as *const Cell<u32> as *mut c_void,
        on_msg_recv: Some(count_msg),
        on_frame_recv_start: None,
        on_frame_recv_chunk: None,
        on_frame_recv_end: None,
        on_close: None,
        genmask: None,
    };
    let (ws, peer, code) = c_server_and_rust_peer(&lp, &callbacks);
    peer.queue_text("one").unwrap();
    run_until(&lp, "the first message", || calls.get() == 1);
    inject_panic_for_tests();
    peer.queue_text("two").unwrap();
    run_until(&lp, "the peer's close", || code.get() != 0);
    assert_eq!(code.get(), 1011);
    assert_eq!(
        calls.get(),
        1,
        "the C callback ran for the message whose glue panicked"
    );
    // SAFETY: `ws` is a live handle until its release here.
    unsafe {
        assert!(!nwe_last_panic(ws).is_null());
        nwe_release(ws);
    }
}
