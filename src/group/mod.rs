//! Consumer groups: the group coordinator and its durable state in `__consumer_offsets`.

pub mod records;
pub mod classic;
