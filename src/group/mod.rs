//! Consumer groups: the group coordinator and its durable state in `__consumer_offsets`.

pub mod consumer;
pub mod records;
