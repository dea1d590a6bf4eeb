//! Background scrubber (placeholder, filled in below).
