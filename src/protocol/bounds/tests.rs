//! Table-vs-crate agreement, truncation and random-input tests.
//!
//! A schema-driven generator produces valid request bodies from the tables
//! (arrays of 0–3 elements, nullable fields set and unset, known tagged fields
//! set and unset, plus unknown tags). kafka-protocol must decode every one of
//! them completely, re-encode it, and the pre-scan must accept both the
//! generated and the crate-encoded bytes: this proves the tables describe
//! exactly what the crate's decoders read.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind};

use super::schema::{Field, Kind, Schema};
use super::{check_request, schemas, walk_request};

/// xorshift64* — deterministic, dependency-free.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

pub(super) fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Generates valid request bodies from a schema.
pub(super) struct Gen<'r> {
    pub(super) rng: &'r mut Rng,
    pub(super) version: i16,
    pub(super) flexible: bool,
}

impl Gen<'_> {
    pub(super) fn request(rng: &mut Rng, schema: &Schema, version: i16) -> Vec<u8> {
        let mut g = Gen { rng, version, flexible: schema.flexible.contains(version) };
        let mut out = Vec::new();
        g.fields(&mut out, schema.fields);
        out
    }

    fn len_prefix(&mut self, out: &mut Vec<u8>, len: Option<usize>, wide: bool) {
        match (self.flexible, len) {
            (true, None) => out.push(0),
            (true, Some(n)) => put_uvarint(out, n as u32 + 1),
            (false, None) if wide => out.extend_from_slice(&(-1i32).to_be_bytes()),
            (false, None) => out.extend_from_slice(&(-1i16).to_be_bytes()),
            (false, Some(n)) if wide => out.extend_from_slice(&(n as i32).to_be_bytes()),
            (false, Some(n)) => out.extend_from_slice(&(n as i16).to_be_bytes()),
        }
    }

    fn fields(&mut self, out: &mut Vec<u8>, fields: &[Field]) {
        for f in fields {
            if f.tag.is_none() && f.versions.contains(self.version) {
                self.value(out, f, &f.kind);
            }
        }
        if !self.flexible {
            return;
        }
        let mut entries: Vec<(u32, Vec<u8>)> = Vec::new();
        for f in fields {
            if let Some(tag) = f.tag
                && f.versions.contains(self.version)
                && !self.rng.chance(3)
            {
                let mut v = Vec::new();
                self.value(&mut v, f, &f.kind);
                entries.push((tag, v));
            }
        }
        if self.rng.chance(4) {
            let len = self.rng.below(5) as usize;
            let v = (0..len).map(|_| self.rng.next() as u8).collect();
            entries.push((10_000 + self.rng.below(100) as u32, v));
        }
        put_uvarint(out, entries.len() as u32);
        for (tag, v) in entries {
            put_uvarint(out, tag);
            put_uvarint(out, v.len() as u32);
            out.extend_from_slice(&v);
        }
    }

    fn value(&mut self, out: &mut Vec<u8>, field: &Field, kind: &Kind) {
        let null = field.nullable.contains(self.version) && self.rng.chance(4);
        match kind {
            Kind::Int8 => out.push(self.rng.next() as u8),
            Kind::Bool => out.push(self.rng.below(2) as u8),
            Kind::Int16 | Kind::UInt16 => out.extend_from_slice(&(self.rng.next() as u16).to_be_bytes()),
            Kind::Int32 => out.extend_from_slice(&(self.rng.next() as u32).to_be_bytes()),
            Kind::Int64 | Kind::Float64 => out.extend_from_slice(&self.rng.next().to_be_bytes()),
            Kind::Uuid => {
                out.extend_from_slice(&self.rng.next().to_be_bytes());
                out.extend_from_slice(&self.rng.next().to_be_bytes());
            }
            Kind::String | Kind::Bytes => {
                let wide = matches!(kind, Kind::Bytes);
                if null {
                    self.len_prefix(out, None, wide);
                } else {
                    let len = self.rng.below(7) as usize;
                    self.len_prefix(out, Some(len), wide);
                    for _ in 0..len {
                        out.push(b'a' + self.rng.below(26) as u8);
                    }
                }
            }
            Kind::Array(element) => {
                if null {
                    self.len_prefix(out, None, true);
                } else {
                    let n = [0, 1, 1, 2, 3][self.rng.below(5) as usize];
                    self.len_prefix(out, Some(n), true);
                    let ef = Field::new(field.name, **element, field.versions);
                    for _ in 0..n {
                        self.value(out, &ef, element);
                    }
                }
            }
            Kind::Struct(fields) => self.fields(out, fields),
            Kind::OptionStruct(fields) => {
                if self.rng.chance(3) {
                    out.push(0xff);
                } else {
                    out.push(1);
                    self.fields(out, fields);
                }
            }
        }
    }
}

pub(super) fn all_versions() -> impl Iterator<Item = (&'static Schema, i16)> {
    schemas().flat_map(|s| (s.versions.0..=s.versions.1).map(move |v| (s, v)))
}

fn api_key(schema: &Schema) -> ApiKey {
    match ApiKey::try_from(schema.api_key) {
        Ok(k) => k,
        Err(()) => panic!("{} has unknown api key {}", schema.name, schema.api_key),
    }
}

/// The tables cover exactly the versions the crate's request decoders accept.
///
/// Note `ApiKey::valid_versions` can be wider than the request decoder
/// (e.g. OffsetCommit advertises 2-10 while `OffsetCommitRequest` decodes
/// 2-9), so versions outside the table must be refused by the decoder itself.
#[test]
fn tables_cover_crate_versions() {
    let mut count = 0;
    for s in schemas() {
        let key = api_key(s);
        let range = key.valid_versions();
        assert_eq!(format!("{key:?}"), s.name);
        assert!(range.min <= s.versions.0 && s.versions.1 <= range.max, "{}", s.name);
        for v in (range.min..=range.max).filter(|v| !s.versions.contains(*v)) {
            let err = RequestKind::decode(key, &mut Bytes::new(), v).err();
            let msg = err.map(|e| format!("{e:#}")).unwrap_or_default();
            assert!(msg.contains("version not supported"), "{} v{v}: {msg}", s.name);
        }
        count += 1;
    }
    // Every request API kafka-protocol 0.18 knows about.
    assert_eq!(count, 87);
    let keys: std::collections::BTreeSet<i16> = schemas().map(|s| s.api_key).collect();
    assert_eq!(keys.len(), 87, "duplicate api keys");
}

#[test]
fn tables_match_crate_decoder() {
    let mut rng = Rng::new(1);
    for (schema, version) in all_versions() {
        let key = api_key(schema);
        for round in 0..30 {
            let body = Gen::request(&mut rng, schema, version);
            let ctx = format!("{} v{version} round {round}: {body:02x?}", schema.name);
            assert_eq!(walk_request(schema.api_key, version, &body), Ok(body.len()), "{ctx}");

            let mut buf = Bytes::from(body.clone());
            let decoded = match RequestKind::decode(key, &mut buf, version) {
                Ok(d) => d,
                Err(e) => panic!("crate rejected generated body: {e:#} — {ctx}"),
            };
            assert!(buf.is_empty(), "crate left {} bytes — {ctx}", buf.len());

            let mut encoded = BytesMut::new();
            if let Err(e) = decoded.encode(&mut encoded, version) {
                panic!("crate failed to re-encode: {e:#} — {ctx}");
            }
            assert_eq!(
                walk_request(schema.api_key, version, &encoded),
                Ok(encoded.len()),
                "crate encoding rejected — {ctx}"
            );
            let mut again = encoded.freeze();
            let redecoded = RequestKind::decode(key, &mut again, version).ok();
            assert_eq!(redecoded.as_ref(), Some(&decoded), "{ctx}");
        }
    }
}

#[test]
fn truncated_bodies_are_rejected() {
    let mut rng = Rng::new(2);
    for (schema, version) in all_versions() {
        for _ in 0..3 {
            let body = Gen::request(&mut rng, schema, version);
            for cut in 0..body.len() {
                let r = check_request(schema.api_key, version, &body[..cut]);
                assert!(r.is_err(), "{} v{version} cut {cut}/{}", schema.name, body.len());
            }
        }
    }
}

/// Random and mutated inputs never panic the pre-scan, and whatever it
/// accepts the crate decodes without panicking (or aborting on allocation).
#[test]
fn random_inputs_never_panic() {
    let mut rng = Rng::new(3);
    let (mut total, mut accepted, mut decoded) = (0u32, 0u32, 0u32);
    for (schema, version) in all_versions() {
        let key = api_key(schema);
        for i in 0..300 {
            let body: Vec<u8> = if i % 2 == 0 {
                let len = rng.below(64) as usize;
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                let mut b = Gen::request(&mut rng, schema, version);
                for _ in 0..=rng.below(3) {
                    if b.is_empty() {
                        break;
                    }
                    let at = rng.below(b.len() as u64) as usize;
                    b[at] = match rng.below(3) {
                        0 => 0xff,
                        1 => 0x7f,
                        _ => rng.next() as u8,
                    };
                }
                b
            };
            total += 1;
            if check_request(schema.api_key, version, &body).is_ok() {
                accepted += 1;
                let res = RequestKind::decode(key, &mut Bytes::from(body), version);
                decoded += u32::from(res.is_ok());
            }
        }
    }
    // Make sure the property is exercised, not vacuously true.
    assert!(accepted > total / 10, "{accepted}/{total} accepted");
    assert!(decoded > accepted / 2, "{decoded}/{accepted} decoded");
}
