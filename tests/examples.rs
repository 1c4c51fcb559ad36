//! The examples end to end, as a user runs them: `echo_server` (with its flags) and
//! `embed` answering our own `client` example over loopback.
#![cfg(feature = "ev")]

#[path = "util/deadline.rs"]
mod deadline;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use deadline::deadline;

/// How often a wait for another process looks again.
const POLL: Duration = Duration::from_millis(10);

/// The examples are built by `cargo test`; build them here too when run on their own.
fn example(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    let dir = std::env::current_exe()
        .expect("test binary path")
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .join("examples");
    let path = dir.join(name);
    BUILD.call_once(|| {
        if !["echo_server", "client", "embed", "upload", "broadcast"]
            .iter()
            .all(|e| dir.join(e).exists())
        {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--examples"])
                .status()
                .expect("cargo build --examples");
            assert!(status.success());
        }
    });
    path
}

/// A server example running on a free port, killed (by PID) when dropped.
struct Server {
    child: Child,
    port: u16,
    /// What it printed on stderr so far (read by a thread until the pipe closes).
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl Server {
    fn start(name: &str, args: &[&str]) -> Server {
        let mut child = Command::new(example(name))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start server example");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("the server prints its address");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = stdout.read_to_string(&mut sink);
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = BufReader::new(child.stderr.take().expect("piped"));
        let into = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut line = String::new();
            while matches!(pipe.read_line(&mut line), Ok(n) if n > 0) {
                into.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        Server {
            child,
            port,
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }

    /// Waits until the server has printed `text` on stderr.
    fn wait_for_stderr(&self, text: &str) {
        let start = Instant::now();
        while !self.stderr.lock().unwrap().contains(text) {
            assert!(
                start.elapsed() < deadline(),
                "the server never printed {text:?}; it printed:\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits until the server exits by itself; its exit status.
    fn wait_for_exit(&mut self, what: &str) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < deadline(), "{what}");
            std::thread::sleep(POLL);
        }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }

    /// Stops the server and returns what it printed on stderr.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + deadline();
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        let err = self.stderr.lock().unwrap().clone();
        err
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client example's own time limit: the tests' deadline.
fn client_timeout() -> String {
    deadline().as_secs().to_string()
}

fn client(args: &[&str]) -> Output {
    Command::new(example("client"))
        .args(args)
        .args(["--timeout", &client_timeout()])
        .output()
        .expect("run client example")
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn echo_server_echoes_every_size_and_answers_the_close_code() {
    let server = Server::start("echo_server", &["--port", "0"]);
    let url = server.url();
    let sizes = ["0", "1", "125", "126", "127", "65535", "65536", "1048576"];
    let mut args = vec![
        url.as_str(),
        "--expect-echo",
        "--message",
        "hello",
        "--message",
        "héllo €😀",
    ];
    for size in &sizes {
        args.extend(["--binary-size", size]);
    }
    args.extend(["--close-code", "4001", "--close-reason", "done"]);
    let output = client(&args);
    let out = stdout_of(&output);
    assert!(
        output.status.success(),
        "client failed:\n{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.contains("echo ok text 5\n"));
    assert!(out.contains("echo ok text 14\n"));
    for size in &sizes {
        assert!(
            out.contains(&format!("echo ok binary {size}\n")),
            "{size} missing:\n{out}"
        );
    }
    assert!(out.ends_with("closed 4001\n"), "{out}");
    server.stop();
}

#[test]
fn echo_server_trace_reports_every_callback_as_json() {
    let server = Server::start(
        "echo_server",
        &["--port", "0", "--trace", "--frame-callbacks"],
    );
    let output = client(&[&server.url(), "--expect-echo", "--message", "hi"]);
    assert!(output.status.success(), "{}", stdout_of(&output));
    // The client may be gone before the server's on_close ran: wait for its line.
    server.wait_for_stderr(r#"{"event":"close","#);
    let trace = server.stop();
    let events: Vec<&str> = trace.lines().filter(|l| l.starts_with('{')).collect();
    let expected = [
        r#"{"event":"frame_recv_start","fin":1,"rsv":0,"opcode":1,"len":2}"#,
        r#"{"event":"frame_recv_chunk","len":2,"head":"6869"}"#,
        r#"{"event":"frame_recv_end"}"#,
        r#"{"event":"msg_recv","rsv":0,"opcode":1,"len":2,"head":"6869","status":0}"#,
        r#"{"event":"frame_recv_start","fin":1,"rsv":0,"opcode":8,"len":2}"#,
        r#"{"event":"frame_recv_chunk","len":2,"head":"03e8"}"#,
        r#"{"event":"frame_recv_end"}"#,
        r#"{"event":"close","code":1000}"#,
    ];
    assert_eq!(events, expected, "full trace:\n{trace}");
}

#[test]
fn echo_server_without_buffering_echoes_empty_messages() {
    // buffering 0: on_msg_recv gets an empty message, which the echo sends back.
    let server = Server::start("echo_server", &["--port", "0", "--buffering", "0"]);
    let output = client(&[&server.url(), "--binary-size", "300"]);
    let out = stdout_of(&output);
    assert!(out.contains("binary 0\n"), "{out}");
    assert!(output.status.success(), "{out}");
    server.stop();
}

#[test]
fn echo_server_closes_1009_over_max_recv_size() {
    let server = Server::start("echo_server", &["--port", "0", "--max-recv-size", "1000"]);
    let url = server.url();
    let ok = client(&[&url, "--expect-echo", "--binary-size", "1000"]);
    assert!(
        ok.status.success(),
        "exactly at the limit is fine: {}",
        stdout_of(&ok)
    );
    let over = client(&[&url, "--binary-size", "1001"]);
    assert!(!over.status.success());
    assert!(
        stdout_of(&over).ends_with("closed 1009\n"),
        "{}",
        stdout_of(&over)
    );
    server.stop();
}

#[test]
fn upload_sends_a_paused_fragmented_message_and_checks_the_echo() {
    let server = Server::start("echo_server", &["--port", "0"]);
    let output = Command::new(example("upload"))
        .args([&server.url(), "--size", "307200"])
        .output()
        .expect("run upload example");
    let out = stdout_of(&output);
    // 64 KiB pieces (the producer's buffer): five, the last one short.
    assert_eq!(
        out,
        "sent 307200 bytes in 5 pieces\necho 307200 bytes ok\nclosed 1000\n",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success());
    let usage = Command::new(example("upload"))
        .args([&server.url(), "--size", "lots"])
        .output()
        .expect("run upload example");
    assert_eq!(usage.status.code(), Some(2));
    server.stop();
}

#[test]
fn echo_server_close_command_closes_from_the_server() {
    let server = Server::start("echo_server", &["--port", "0", "--commands"]);
    let output = client(&[&server.url(), "--message", "!close 4321 server says bye"]);
    assert!(
        stdout_of(&output).ends_with("closed 4321\n"),
        "{}",
        stdout_of(&output)
    );
    server.stop();
}

#[test]
fn client_sends_stdin_lines() {
    let server = Server::start("echo_server", &["--port", "0"]);
    let mut child = Command::new(example("client"))
        .args([server.url().as_str(), "--expect-echo", "--timeout"])
        .arg(client_timeout())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("client");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(b"one\ntwo\nthree\n").unwrap();
    }
    let output = child.wait_with_output().unwrap();
    let out = stdout_of(&output);
    assert!(output.status.success(), "{out}");
    assert_eq!(
        out,
        "text 3 one\necho ok text 3\ntext 3 two\necho ok text 3\ntext 5 three\necho ok text 5\nclosed 1000\n"
    );
    server.stop();
}

#[test]
fn embed_serves_websockets_on_the_hosts_own_loop() {
    // No stop timer while serving: the client is not raced against one.
    let server = Server::start("embed", &["--port", "0"]);
    let url = server.url();
    let output = client(&[&url, "--expect-echo", "--message", "from the host loop"]);
    assert!(output.status.success(), "{}", stdout_of(&output));
    server.stop();
    // The host's own stop timer ends the program, the WebSocket listener on its loop.
    let mut server = Server::start("embed", &["--port", "0", "--seconds", "0.5"]);
    let status = server.wait_for_exit("embed did not stop after --seconds");
    assert!(status.success(), "{status}");
}

/// A minimal blocking WebSocket client for the broadcast test: the handshake, then
/// the server's (unmasked, short) frames one by one.
struct RawClient {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    fn connect(port: u16) -> RawClient {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        sock.set_read_timeout(Some(deadline())).unwrap();
        sock.write_all(
            b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
              Sec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
        let mut client = RawClient {
            sock,
            buf: Vec::new(),
        };
        let end = loop {
            if let Some(at) = client.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            client.fill();
        };
        assert!(client.buf.starts_with(b"HTTP/1.1 101 "));
        client.buf.drain(..end);
        client
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = self
            .sock
            .read(&mut chunk)
            .expect("read within the deadline");
        assert!(n > 0, "the server closed the socket");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// The next frame: opcode and payload (payloads under 126 bytes).
    fn frame(&mut self) -> (u8, Vec<u8>) {
        while self.buf.len() < 2 || self.buf.len() < 2 + usize::from(self.buf[1] & 0x7f) {
            self.fill();
        }
        let len = usize::from(self.buf[1]);
        assert!(len < 126, "short unmasked frames only");
        let frame: Vec<u8> = self.buf.drain(..2 + len).collect();
        (frame[0] & 0x0f, frame[2..].to_vec())
    }
}

#[test]
fn broadcast_ticks_every_client_and_closes_them_all_on_sigterm() {
    let mut server = Server::start("broadcast", &["--port", "0", "--interval", "20"]);
    let mut clients = [
        RawClient::connect(server.port),
        RawClient::connect(server.port),
    ];
    // Every client gets the ticks; once both are in the map, they say so.
    for client in &mut clients {
        loop {
            let (opcode, payload) = client.frame();
            assert_eq!(opcode, 1, "text");
            let text = String::from_utf8(payload).unwrap();
            assert!(text.starts_with(r#"{"tick":"#), "{text}");
            if text.ends_with(r#""clients":2}"#) {
                break;
            }
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for client in &mut clients {
        let close = loop {
            match client.frame() {
                (1, _) => {} // a tick sent before the signal
                (8, payload) => break payload,
                other => panic!("unexpected frame {other:?}"),
            }
        };
        assert_eq!(&close[..2], &1001u16.to_be_bytes(), "going away");
        // Our close reply (masked, empty key) ends the closing handshake.
        client
            .sock
            .write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe9])
            .unwrap();
    }
    let status = server.wait_for_exit("broadcast did not exit after SIGTERM");
    assert!(status.success(), "{status}");
}
