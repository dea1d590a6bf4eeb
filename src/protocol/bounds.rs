//! Schema-driven bounds pre-scan of Kafka request bodies.
//!
//! `kafka-protocol` 0.18 decodes arrays with `Vec::with_capacity(n)` where `n`
//! is the element count read from the wire, so a tiny frame declaring 2^31
//! elements makes the decoder try to allocate hundreds of gigabytes and abort
//! the process. [`check_request`] walks a request body following the
//! request's schema *before* it is handed to the crate's decoder, and rejects
//! any array whose declared count cannot possibly fit in the bytes that
//! remain, and any string/bytes whose length exceeds what remains.
//!
//! The walk mirrors the crate's generated decoders exactly, including one
//! subtlety: for *known* tagged fields the crate ignores the size prefix and
//! decodes the value straight from the main buffer (`FetchRequest`'s
//! `ReplicaState`, `BrokerHeartbeatRequest`'s `OfflineLogDirs` array, ...).
//! Skipping those by their declared size would let the pre-scan and the
//! decoder disagree about where subsequent fields start, so known tagged
//! fields are walked by schema, and their declared size must match the bytes
//! their value occupies. Unknown tags are skipped by size, exactly as the
//! crate does (it copies them out with a bounds-checked `try_get_bytes`).
//!
//! When [`check_request`] returns `Ok`, every array the decoder will
//! pre-allocate has a declared count no larger than the bytes remaining
//! divided by the minimum encoded size of one element, so the total
//! pre-allocation is linear in the body length.

mod admin;
mod cluster_admin;
mod controller;
mod data;
mod groups;
pub mod schema;
mod security;
mod share;
mod txn;

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;

use schema::{Field, Kind, Schema};

/// Why a request body was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundsError {
    /// No schema is known for this api key / version; the caller decides
    /// whether to decode it anyway.
    #[error("no request schema for api key {api_key} version {api_version}")]
    UnknownSchema { api_key: i16, api_version: i16 },
    /// The body ends before a value is complete.
    #[error("truncated at `{field}` (offset {offset}): need {needed} bytes, {remaining} remain")]
    Truncated { field: &'static str, offset: usize, needed: usize, remaining: usize },
    /// An array declares more elements than the remaining bytes can hold.
    #[error(
        "array `{field}` (offset {offset}) declares {declared} elements of at least \
         {min_element_size} bytes but only {remaining} bytes remain"
    )]
    ArrayTooLong { field: &'static str, offset: usize, declared: u64, min_element_size: usize, remaining: usize },
    /// A length or count below -1.
    #[error("negative length {length} for `{field}` (offset {offset})")]
    NegativeLength { field: &'static str, offset: usize, length: i32 },
    /// A null value where the field is not nullable.
    #[error("`{field}` (offset {offset}) is null but not nullable in this version")]
    UnexpectedNull { field: &'static str, offset: usize },
    /// A known tag used in a version where the decoder rejects it.
    #[error("tagged field {tag} (`{field}`) is not valid in version {version}")]
    TagNotValidForVersion { tag: u32, field: &'static str, version: i16 },
    /// A known tagged field whose size prefix disagrees with its value.
    #[error("tagged field {tag} (`{field}`) declares {declared} bytes but its value occupies {actual}")]
    TaggedFieldSize { tag: u32, field: &'static str, declared: u32, actual: usize },
}

/// Every schema group; each exports a `SCHEMAS` table.
const GROUPS: &[&[&Schema]] = &[
    data::SCHEMAS,
    groups::SCHEMAS,
    admin::SCHEMAS,
    txn::SCHEMAS,
    security::SCHEMAS,
    cluster_admin::SCHEMAS,
    controller::SCHEMAS,
    share::SCHEMAS,
];

/// All request schemas known to the pre-scan.
pub fn schemas() -> impl Iterator<Item = &'static Schema> {
    GROUPS.iter().flat_map(|g| g.iter().copied())
}

/// The schema for `api_key` at `api_version`, if known.
pub fn request_schema(api_key: i16, api_version: i16) -> Option<&'static Schema> {
    schemas().find(|s| s.api_key == api_key && s.versions.contains(api_version))
}

/// Checks that a request body (the bytes after the request header) can be
/// handed to `kafka-protocol`'s decoder without unbounded pre-allocation.
///
/// Returns [`BoundsError::UnknownSchema`] when the api key / version has no
/// schema. Trailing bytes after the body are tolerated, as the decoder does.
pub fn check_request(api_key: i16, api_version: i16, body: &[u8]) -> Result<(), BoundsError> {
    walk_request(api_key, api_version, body).map(|_| ())
}

/// Like [`check_request`], returning the number of bytes the body occupies.
pub fn walk_request(api_key: i16, api_version: i16, body: &[u8]) -> Result<usize, BoundsError> {
    let schema = request_schema(api_key, api_version).ok_or(BoundsError::UnknownSchema { api_key, api_version })?;
    let mut walker =
        Walker { buf: body, pos: 0, version: api_version, flexible: schema.flexible.contains(api_version) };
    walker.fields(schema.fields)?;
    Ok(walker.pos)
}

/// Minimum encoded size of a value of `kind`.
fn min_size(kind: &Kind, version: i16, flexible: bool) -> usize {
    let compact = flexible;
    match kind {
        Kind::Int8 | Kind::Bool | Kind::OptionStruct(_) => 1,
        Kind::Int16 | Kind::UInt16 => 2,
        Kind::Int32 => 4,
        Kind::Int64 | Kind::Float64 => 8,
        Kind::Uuid => 16,
        Kind::String if compact => 1,
        Kind::String => 2,
        Kind::Bytes | Kind::Array(_) if compact => 1,
        Kind::Bytes | Kind::Array(_) => 4,
        Kind::Struct(fields) => {
            let own: usize = fields
                .iter()
                .filter(|f| f.tag.is_none() && f.versions.contains(version))
                .map(|f| min_size(&f.kind, version, flexible))
                .sum();
            own + usize::from(flexible)
        }
    }
}

struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
    version: i16,
    /// Flexible version: compact encodings and tagged-field sections.
    flexible: bool,
}

impl Walker<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&[u8], BoundsError> {
        let remaining = self.remaining();
        if n > remaining {
            return Err(BoundsError::Truncated { field, offset: self.pos, needed: n, remaining });
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..self.pos])
    }

    fn int8(&mut self, field: &'static str) -> Result<i8, BoundsError> {
        let b = self.take(1, field)?;
        Ok(i8::from_be_bytes([b[0]]))
    }

    fn int16(&mut self, field: &'static str) -> Result<i16, BoundsError> {
        let b = self.take(2, field)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn int32(&mut self, field: &'static str) -> Result<i32, BoundsError> {
        let b = self.take(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Unsigned varint, decoded exactly like kafka-protocol's
    /// `UnsignedVarInt`: at most five bytes, excess high bits dropped.
    fn uvarint(&mut self, field: &'static str) -> Result<u32, BoundsError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = u32::from(self.take(1, field)?[0]);
            value |= (b & 0x7f) << (i * 7);
            if b < 0x80 {
                break;
            }
        }
        Ok(value)
    }

    /// Reads a length/count prefix. `Ok(None)` means null.
    fn length(&mut self, field: &Field, wide: bool) -> Result<Option<u64>, BoundsError> {
        let offset = self.pos;
        let len = if self.flexible {
            match self.uvarint(field.name)? {
                0 => None,
                n => Some(u64::from(n - 1)),
            }
        } else {
            let n = if wide { self.int32(field.name)? } else { i32::from(self.int16(field.name)?) };
            match n {
                -1 => None,
                n if n < -1 => {
                    return Err(BoundsError::NegativeLength { field: field.name, offset, length: n });
                }
                n => Some(u64::from(n.unsigned_abs())),
            }
        };
        if len.is_none() && !field.nullable.contains(self.version) {
            return Err(BoundsError::UnexpectedNull { field: field.name, offset });
        }
        Ok(len)
    }

    fn skip_len(&mut self, len: u64, field: &'static str) -> Result<(), BoundsError> {
        let n = usize::try_from(len).unwrap_or(usize::MAX);
        self.take(n, field).map(|_| ())
    }

    /// Walks the fields of one structure, then its tagged-field section.
    fn fields(&mut self, fields: &'static [Field]) -> Result<(), BoundsError> {
        for field in fields {
            if field.tag.is_none() && field.versions.contains(self.version) {
                self.value(field, &field.kind)?;
            }
        }
        if self.flexible {
            self.tagged_fields(fields)?;
        }
        Ok(())
    }

    fn value(&mut self, field: &Field, kind: &Kind) -> Result<(), BoundsError> {
        let name = field.name;
        match kind {
            Kind::Int8 | Kind::Bool => self.take(1, name).map(|_| ()),
            Kind::Int16 | Kind::UInt16 => self.take(2, name).map(|_| ()),
            Kind::Int32 => self.take(4, name).map(|_| ()),
            Kind::Int64 | Kind::Float64 => self.take(8, name).map(|_| ()),
            Kind::Uuid => self.take(16, name).map(|_| ()),
            Kind::String => match self.length(field, false)? {
                Some(len) => self.skip_len(len, name),
                None => Ok(()),
            },
            Kind::Bytes => match self.length(field, true)? {
                Some(len) => self.skip_len(len, name),
                None => Ok(()),
            },
            Kind::Array(element) => {
                let offset = self.pos;
                let Some(count) = self.length(field, true)? else {
                    return Ok(());
                };
                let min_element_size = min_size(element, self.version, self.flexible).max(1);
                let remaining = self.remaining();
                let needed = count.saturating_mul(min_element_size as u64);
                if needed > remaining as u64 {
                    return Err(BoundsError::ArrayTooLong {
                        field: name,
                        offset,
                        declared: count,
                        min_element_size,
                        remaining,
                    });
                }
                // Array elements are never nullable.
                let element_field = Field::new(name, **element, field.versions);
                for _ in 0..count {
                    self.value(&element_field, element)?;
                }
                Ok(())
            }
            Kind::Struct(fields) => self.fields(fields),
            Kind::OptionStruct(fields) => {
                // kafka-protocol: a marker of exactly 1 means present,
                // anything else means null.
                if self.int8(name)? == 1 { self.fields(fields) } else { Ok(()) }
            }
        }
    }

    fn tagged_fields(&mut self, fields: &'static [Field]) -> Result<(), BoundsError> {
        const NAME: &str = "<tagged fields>";
        let offset = self.pos;
        let count = self.uvarint(NAME)?;
        // Every entry is at least a one-byte tag and a one-byte size.
        let remaining = self.remaining();
        if u64::from(count) * 2 > remaining as u64 {
            return Err(BoundsError::ArrayTooLong {
                field: NAME,
                offset,
                declared: u64::from(count),
                min_element_size: 2,
                remaining,
            });
        }
        for _ in 0..count {
            let tag = self.uvarint(NAME)?;
            let size = self.uvarint(NAME)?;
            match fields.iter().find(|f| f.tag == Some(tag)) {
                Some(field) => {
                    if !field.versions.contains(self.version) {
                        return Err(BoundsError::TagNotValidForVersion {
                            tag,
                            field: field.name,
                            version: self.version,
                        });
                    }
                    // The decoder reads known tagged fields straight from the
                    // main buffer, ignoring `size`: walk them the same way.
                    let start = self.pos;
                    self.value(field, &field.kind)?;
                    let actual = self.pos - start;
                    if actual as u64 != u64::from(size) {
                        return Err(BoundsError::TaggedFieldSize { tag, field: field.name, declared: size, actual });
                    }
                }
                None => self.skip_len(u64::from(size), NAME)?,
            }
        }
        Ok(())
    }
}
