//! Versioned binary encoding for values that cross the network or sit in the
//! log store: one format version byte, then postcard.
//!
//! openraft's messages (append entries, votes, snapshot meta, ...) are encoded
//! whole with their serde derive; proposals inside them keep their own
//! versioned encoding (see `command`).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::command::decode_exact;
use crate::error::Error;

/// The wire format this build writes.
pub const WIRE_FORMAT_VERSION: u8 = 1;

/// Encodes a value: version byte, then postcard.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![WIRE_FORMAT_VERSION];
    postcard::to_io(value, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// Decodes a value written by `encode`, refusing unknown versions and
/// trailing bytes.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, Error> {
    let (&version, body) = bytes.split_first().ok_or(Error::Decode {
        what,
        reason: "empty".into(),
    })?;
    if version != WIRE_FORMAT_VERSION {
        return Err(Error::UnknownVersion {
            what,
            found: version,
            supported: WIRE_FORMAT_VERSION,
        });
    }
    decode_exact(what, body)
}
