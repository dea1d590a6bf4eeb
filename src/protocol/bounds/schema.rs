//! A tiny data DSL describing the wire layout of Kafka request bodies.
//!
//! Each request is a [`Schema`]: a list of [`Field`]s, each with the range of
//! versions in which it is present on the wire, the range in which it may be
//! null, and (for tagged fields) its tag number. Nested structures and arrays
//! are expressed with [`Kind::Struct`], [`Kind::OptionStruct`] and
//! [`Kind::Array`]. Whether strings, bytes and arrays use the compact
//! (unsigned-varint length) encoding, and whether a struct ends with a
//! tagged-fields section, is decided by the message's flexible versions.

/// An inclusive range of protocol versions, `V(min, max)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V(pub i16, pub i16);

impl V {
    /// The empty range.
    pub const NONE: V = V(1, 0);

    /// Whether `version` lies in this range.
    pub const fn contains(self, version: i16) -> bool {
        self.0 <= version && version <= self.1
    }
}

/// The wire type of a field.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Int8,
    Int16,
    UInt16,
    Int32,
    Int64,
    Float64,
    Bool,
    Uuid,
    /// `string`: int16 length (compact: uvarint length + 1), -1/0 for null.
    String,
    /// `bytes` / `records`: int32 length (compact: uvarint length + 1).
    Bytes,
    /// An array of the given element kind: int32 count (compact: uvarint
    /// count + 1), -1/0 for null.
    Array(&'static Kind),
    /// An inline structure.
    Struct(&'static [Field]),
    /// A nullable inline structure: an int8 marker (1 = present) followed by
    /// the structure when present.
    OptionStruct(&'static [Field]),
}

/// One field of a structure.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    /// Versions in which the field is on the wire (for tagged fields: in
    /// which the tag is accepted).
    pub versions: V,
    /// Versions in which the field may be null.
    pub nullable: V,
    /// `Some(tag)` for a tagged field.
    pub tag: Option<u32>,
}

impl Field {
    /// A non-nullable, untagged field.
    pub const fn new(name: &'static str, kind: Kind, versions: V) -> Self {
        Self { name, kind, versions, nullable: V::NONE, tag: None }
    }

    /// Marks the field nullable in `versions`.
    pub const fn nullable(self, versions: V) -> Self {
        Self { nullable: versions, ..self }
    }

    /// Marks the field as a tagged field with the given tag.
    pub const fn tagged(self, tag: u32) -> Self {
        Self { tag: Some(tag), ..self }
    }
}

/// The body layout of one request API.
#[derive(Clone, Copy, Debug)]
pub struct Schema {
    /// The API name, as in `kafka_protocol::messages::ApiKey`.
    pub name: &'static str,
    pub api_key: i16,
    /// Versions for which the layout is known.
    pub versions: V,
    /// Flexible versions (compact encodings and tagged-field sections).
    pub flexible: V,
    /// Top-level fields of the request body.
    pub fields: &'static [Field],
}
