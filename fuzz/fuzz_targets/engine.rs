//! Arbitrary bytes fed to an engine of each role, under a configuration and
//! read splits taken from the input: no panic, and every close code the engine
//! sends is one allowed on the wire.
#![no_main]

use libfuzzer_sys::fuzz_target;
use net_websocket_ev::proto::{
    is_valid_close_code, Config, Engine, Flow, Handler, OpCode, RecvStatus, Role, Rsv,
};

/// Pauses now and then, to exercise resume.
struct Pauser(u8);

impl Pauser {
    fn flow(&mut self) -> Flow {
        self.0 = self.0.wrapping_add(1);
        if self.0 % 7 == 0 {
            Flow::Pause
        } else {
            Flow::Continue
        }
    }
}

impl Handler for Pauser {
    fn on_frame_start(&mut self, _: bool, _: Rsv, _: OpCode, _: u64) -> Flow {
        self.flow()
    }
    fn on_frame_chunk(&mut self, _: &[u8]) -> Flow {
        self.flow()
    }
    fn on_message(&mut self, _: Rsv, _: OpCode, _: &[u8], status: u16) -> Flow {
        assert_eq!(status, 0);
        self.flow()
    }
}

/// Checks every close frame in `wire` (written by the engine itself).
fn check_closes(mut wire: &[u8]) {
    while wire.len() >= 2 {
        let masked = wire[1] & 0x80 != 0;
        let (len, mut at) = match wire[1] & 0x7f {
            126 => (usize::from(u16::from_be_bytes([wire[2], wire[3]])), 4),
            127 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&wire[2..10]);
                (u64::from_be_bytes(be) as usize, 10)
            }
            n => (usize::from(n), 2),
        };
        let mut key = [0u8; 4];
        if masked {
            key.copy_from_slice(&wire[at..at + 4]);
            at += 4;
        }
        if wire[0] & 0x0f == 8 && len >= 2 {
            let code = u16::from_be_bytes([wire[at] ^ key[0], wire[at + 1] ^ key[1]]);
            assert!(is_valid_close_code(code), "sent close code {code}");
        }
        wire = &wire[at + len..];
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, rest)) = data.split_first() else {
        return;
    };
    for role in [Role::Server, Role::Client] {
        let config = Config {
            buffering: knobs & 1 == 0,
            allowed_rsv: if knobs & 2 != 0 {
                Rsv::RSV1
            } else {
                Rsv::empty()
            },
            max_recv_size: if knobs & 4 != 0 { 64 } else { 1 << 20 },
            ..Config::default()
        };
        let mut engine = Engine::new(role, config);
        let mut handler = Pauser(knobs);
        let step = usize::from(knobs >> 3) + 1;
        for piece in rest.chunks(step) {
            let mut status = engine.feed(piece, &mut handler);
            while status == RecvStatus::Paused {
                status = engine.resume(&mut handler);
            }
            if status == RecvStatus::Closed {
                assert!(!engine.want_read());
                break;
            }
        }
        let mut wire = Vec::new();
        engine
            .send(&mut wire)
            .expect("writing to a Vec cannot fail");
        check_closes(&wire);
        let code = engine.status_code_received();
        assert!(code == 1005 || code == 1006 || is_valid_close_code(code));
    }
});
