//! Deterministic payloads shared by `benches/deflate.rs` and
//! `src/bin/deflate-load.rs` (each includes this file as `mod payload;`), so
//! that their sizes and ratios compare.
#![allow(dead_code)] // each includer uses part of it

/// JSON-like text of exactly `len` bytes: an array of records whose ids, names,
/// numbers and flags vary (deterministically), as an API's messages do.
pub fn json_like(len: usize) -> Vec<u8> {
    const NAMES: [&str; 8] = [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    ];
    const CITIES: [&str; 5] = ["Berlin", "Lisbon", "Osaka", "Quito", "Toronto"];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut out = String::from("[");
    let mut id = 1000;
    while out.len() < len {
        let r = rng.next();
        let name = NAMES[(r % 8) as usize];
        out.push_str(&format!(
            "{{\"id\":{id},\"user\":\"{name}{}\",\"email\":\"{name}.{}@example.com\",\
             \"city\":\"{}\",\"score\":{}.{:02},\"active\":{},\"tags\":[\"t{}\",\"t{}\"],\
             \"ts\":{}}},",
            r >> 8 & 0xfff,
            r >> 20 & 0xff,
            CITIES[(r >> 28) as usize % 5],
            r >> 32 & 0x3ff,
            r >> 42 & 0x3f,
            r >> 48 & 1 == 1,
            r >> 49 & 0xf,
            r >> 53 & 0xf,
            1_700_000_000 + (r >> 40 & 0xffff),
        ));
        id += 1 + (r >> 60) as u32;
    }
    let mut bytes = out.into_bytes();
    bytes.truncate(len - 1);
    bytes.push(b']');
    bytes
}

/// `len` random bytes (incompressible).
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    (0..len).map(|_| (rng.next() >> 32) as u8).collect()
}

pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
