//! The fuzz target's property on seeded random input: valid frame sequences
//! with random corruption, fed to both roles in random splits with random
//! pauses. No panic, and every close code sent is legal.
mod engine_util;
use engine_util as util;

use net_websocket_ev::proto::{
    is_valid_close_code, Config, Engine, Flow, Handler, OpCode, RecvStatus, Role, Rsv,
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use util::*;

struct RandomPause(StdRng);

impl RandomPause {
    fn flow(&mut self) -> Flow {
        if self.0.gen_ratio(1, 5) {
            Flow::Pause
        } else {
            Flow::Continue
        }
    }
}

impl Handler for RandomPause {
    fn on_frame_start(&mut self, _: bool, _: Rsv, _: OpCode, _: u64) -> Flow {
        self.flow()
    }
    fn on_frame_chunk(&mut self, _: &[u8]) -> Flow {
        self.flow()
    }
    fn on_frame_end(&mut self) -> Flow {
        self.flow()
    }
    fn on_message(&mut self, _: Rsv, _: OpCode, _: &[u8], status: u16) -> Flow {
        assert_eq!(status, 0);
        self.flow()
    }
}

fn random_input(rng: &mut StdRng, role: Role) -> Vec<u8> {
    let mut input = Vec::new();
    for _ in 0..rng.gen_range(1..6) {
        let op = [0u8, 1, 2, 8, 9, 10, 3][rng.gen_range(0..7)];
        let len = [0usize, 1, 2, 5, 125, 126, 300][rng.gen_range(0..7)];
        let payload: Vec<u8> = match rng.gen_range(0..3) {
            0 => "é€x".bytes().cycle().take(len).collect(),
            1 => (0..len).map(|_| rng.gen()).collect(),
            _ => close_payload(rng.gen_range(990..1020), b"ok"),
        };
        input.extend(frame_to(role, rng.gen_ratio(3, 4), op, &payload));
    }
    for _ in 0..rng.gen_range(0..4) {
        let at = rng.gen_range(0..input.len());
        input[at] ^= 1 << rng.gen_range(0..8);
    }
    input
}

#[test]
fn random_corrupted_input_never_panics_and_closes_legally() {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for _ in 0..3000 {
        for role in [Role::Server, Role::Client] {
            let config = Config::default()
                .buffering(rng.gen())
                .allowed_rsv(if rng.gen() { Rsv::RSV1 } else { Rsv::empty() })
                .max_recv_size(if rng.gen() { 64 } else { 1 << 20 });
            let input = random_input(&mut rng, role);
            let mut engine = Engine::new(role, config);
            let mut h = RandomPause(StdRng::seed_from_u64(rng.gen()));
            let mut reader = Pieces::new(&input, Split::Random(rng.gen()));
            reader.eof = true;
            loop {
                let status = engine.recv(&mut reader, &mut h).unwrap();
                match status {
                    RecvStatus::Paused => continue,
                    RecvStatus::Closed => {
                        assert!(!engine.want_read());
                        break;
                    }
                    RecvStatus::Eof => break,
                    RecvStatus::WouldBlock => unreachable!("the reader ends with EOF"),
                }
            }
            let mut wire = Vec::new();
            engine.send(&mut wire).unwrap();
            for f in parse_frames(&wire).into_iter().filter(|f| f.op == 8) {
                if let Some((code, _)) = f.close() {
                    assert!(is_valid_close_code(code), "close {code}");
                }
            }
            let code = engine.status_code_received();
            assert!(code == 1005 || code == 1006 || is_valid_close_code(code));
        }
    }
}
