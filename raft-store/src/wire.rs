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
    encode_versioned(WIRE_FORMAT_VERSION, value)
}

/// Decodes a value written by `encode`, refusing unknown versions and
/// trailing bytes.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, Error> {
    decode_versioned(what, WIRE_FORMAT_VERSION, bytes)
}

/// `version`, then the postcard encoding of `value`: the shape of every
/// versioned encoding in this crate (wire messages, rows).
pub fn encode_versioned<T: Serialize>(version: u8, value: &T) -> Vec<u8> {
    let mut out = vec![version];
    postcard::to_io(value, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// Reads what `encode_versioned(version, ..)` wrote; any other version byte,
/// empty input or trailing bytes are refused.
pub fn decode_versioned<T: DeserializeOwned>(
    what: &'static str,
    version: u8,
    bytes: &[u8],
) -> Result<T, Error> {
    let (&found, body) = bytes.split_first().ok_or(Error::Decode {
        what,
        reason: "empty".into(),
    })?;
    if found != version {
        return Err(Error::UnknownVersion {
            what,
            found,
            supported: version,
        });
    }
    decode_exact(what, body)
}
