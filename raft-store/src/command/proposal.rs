//! What one log entry carries, and its versioned binary encoding.

use std::fmt;

use serde::Deserialize;
use serde::Deserializer;
use serde::Serialize;
use serde::Serializer;

use super::ACTOR_NAME_BYTES_MAX;
use super::Actor;
use super::Command;
use super::PROPOSAL_BYTES_MAX;
use super::PROPOSAL_FORMAT_VERSION;
use super::v1::ActorV1;
use super::v1::CommandV1;
use super::v1::ProposalV1;
use super::v1::digest_bytes;
use crate::error::Error;
use crate::ids::RequestId;

/// What one log entry carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Caller-chosen idempotency key; `RequestId::NONE` for none.
    pub request_id: RequestId,
    /// Who asked.
    pub actor: Actor,
    /// Unix time in milliseconds, written by the leader just before proposing.
    /// Zero until then. Apply uses the larger of it and the last one seen.
    pub issued_at_ms: u64,
    /// The change itself.
    pub command: Command,
}

impl Proposal {
    /// A proposal not yet stamped by the leader.
    pub fn new(request_id: RequestId, actor: Actor, command: Command) -> Self {
        Proposal {
            request_id,
            actor,
            issued_at_ms: 0,
            command,
        }
    }

    /// Version byte, then the body.
    pub fn encode(&self) -> Vec<u8> {
        let body = ProposalV1 {
            request_id: self.request_id,
            actor: ActorV1::from(&self.actor),
            issued_at_ms: self.issued_at_ms,
            command: CommandV1::from(&self.command),
        };
        let mut out = vec![PROPOSAL_FORMAT_VERSION];
        postcard::to_io(&body, &mut out).expect("writing to a Vec cannot fail");
        out
    }

    /// Reads any version this build knows. Refuses oversized input, unknown
    /// versions and trailing bytes; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > PROPOSAL_BYTES_MAX {
            return Err(Error::Decode {
                what: "proposal",
                reason: format!("{} bytes, at most {PROPOSAL_BYTES_MAX}", bytes.len()),
            });
        }
        let (&version, body) = bytes.split_first().ok_or(Error::Decode {
            what: "proposal",
            reason: "empty".into(),
        })?;
        match version {
            1 => {
                let body: ProposalV1 = decode_exact("proposal", body)?;
                if body.actor.name.len() > ACTOR_NAME_BYTES_MAX {
                    return Err(Error::Decode {
                        what: "proposal",
                        reason: "actor name too long".into(),
                    });
                }
                Ok(Proposal {
                    request_id: body.request_id,
                    actor: Actor::from(body.actor),
                    issued_at_ms: body.issued_at_ms,
                    command: Command::from(body.command),
                })
            }
            found => Err(Error::UnknownVersion {
                what: "proposal",
                found,
                supported: PROPOSAL_FORMAT_VERSION,
            }),
        }
    }

    /// A digest of the command, to tell a true retry from a reused request id.
    pub fn command_digest(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(&digest_bytes(&self.command))
    }
}

/// Decodes a postcard body and refuses trailing bytes.
pub(crate) fn decode_exact<'a, T: Deserialize<'a>>(
    what: &'static str,
    bytes: &'a [u8],
) -> Result<T, Error> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| Error::Decode {
        what,
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(Error::Decode {
            what,
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(value)
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} by {} (request {})",
            self.command.name(),
            self.actor,
            self.request_id
        )
    }
}

// A proposal travels inside openraft's entries as its own versioned bytes, so
// the log and the network carry exactly the encoding above.
impl Serialize for Proposal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.encode())
    }
}

impl<'de> Deserialize<'de> for Proposal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> serde::de::Visitor<'de> for BytesVisitor {
            type Value = Proposal;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an encoded proposal")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Proposal, E> {
                Proposal::decode(bytes).map_err(E::custom)
            }
            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Proposal, E> {
                self.visit_bytes(&bytes)
            }
        }
        deserializer.deserialize_bytes(BytesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::ActorKind;
    use crate::ids::HostId;

    fn attach(host: &str) -> Proposal {
        Proposal {
            request_id: RequestId(42),
            actor: Actor::new(ActorKind::Host, host),
            issued_at_ms: 1_700_000_000_000,
            command: Command::AttachHost {
                host_id: HostId::new(host).unwrap(),
                preferred_region: "eu".into(),
            },
        }
    }

    #[test]
    fn proposals_round_trip_through_the_versioned_encoding() {
        let proposal = attach("host-1");
        let bytes = proposal.encode();
        assert_eq!(bytes[0], PROPOSAL_FORMAT_VERSION);
        assert_eq!(Proposal::decode(&bytes).unwrap(), proposal);
    }

    #[test]
    fn unknown_versions_trailing_bytes_and_empty_input_are_refused() {
        let mut bytes = attach("host-1").encode();
        bytes[0] = 9;
        assert!(matches!(
            Proposal::decode(&bytes),
            Err(Error::UnknownVersion { found: 9, .. })
        ));
        let mut bytes = attach("host-1").encode();
        bytes.push(0);
        assert!(matches!(
            Proposal::decode(&bytes),
            Err(Error::Decode { .. })
        ));
        assert!(Proposal::decode(&[]).is_err());
        assert!(Proposal::decode(&vec![1u8; PROPOSAL_BYTES_MAX + 1]).is_err());
    }

    /// The version-1 encoding is a format: this exact byte string must keep
    /// decoding to the same proposal in every later build.
    #[test]
    fn version_one_encoding_is_stable() {
        let proposal = Proposal {
            request_id: RequestId(1),
            actor: Actor::new(ActorKind::Admin, "ops"),
            issued_at_ms: 5,
            command: Command::DetachHost {
                host_id: HostId::new("h").unwrap(),
            },
        };
        let golden: &[u8] = &[1, 1, 0, 3, b'o', b'p', b's', 5, 5, 1, b'h'];
        assert_eq!(proposal.encode(), golden);
        assert_eq!(Proposal::decode(golden).unwrap(), proposal);
    }

    #[test]
    fn digests_differ_between_commands() {
        assert_ne!(attach("a").command_digest(), attach("b").command_digest());
        assert_eq!(attach("a").command_digest(), attach("a").command_digest());
    }
}
