//! The byte layout of the embedded backend's tables.
//!
//! Hand-rolled rather than serde-based because the records are tiny and fixed in shape, and
//! because a decoding failure must surface as `Error::Corrupt` with the offending key, never
//! as a default value.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{Error, Event, KeyValue, Result};

/// A `current` table value: the key's revisions followed by the stored bytes.
pub(super) fn encode_current(create_revision: i64, mod_revision: i64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + value.len());
    out.extend_from_slice(&create_revision.to_le_bytes());
    out.extend_from_slice(&mod_revision.to_le_bytes());
    out.extend_from_slice(value);
    out
}

/// Reads a `current` table value back into a [`KeyValue`] with the caller's (relative) key.
pub(super) fn decode_current(key: Bytes, raw: &[u8]) -> Result<KeyValue> {
    if raw.len() < 16 {
        return Err(corrupt(&key, "current value shorter than its header"));
    }
    let (header, value) = raw.split_at(16);
    let mut header = header;
    Ok(KeyValue {
        create_revision: header.get_i64_le(),
        mod_revision: header.get_i64_le(),
        value: Bytes::copy_from_slice(value),
        key,
    })
}

/// The mod revision of a `current` table value, without copying the stored bytes.
pub(super) fn current_mod_revision(raw: &[u8]) -> Option<i64> {
    raw.get(8..16).map(|mut b| b.get_i64_le())
}

/// One `history` record: what a revision did to one key, and what the key held before it.
/// Keeping the previous value lets a list at an older revision undo newer writes, and gives
/// delete events their last state, without keeping old versions anywhere else.
#[derive(Debug, Clone)]
pub(super) struct Change {
    pub key: Bytes,
    /// `Some((create_revision, value))` for a put, `None` for a delete.
    pub new: Option<(i64, Bytes)>,
    pub prev: Option<KeyValue>,
}

const PUT: u8 = 0;
const DELETE: u8 = 1;

pub(super) fn encode_change(change: &Change) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_u8(if change.new.is_some() { PUT } else { DELETE });
    put_bytes(&mut out, &change.key);
    if let Some((create_revision, value)) = &change.new {
        out.put_i64_le(*create_revision);
        put_bytes(&mut out, value);
    }
    match &change.prev {
        None => out.put_u8(0),
        Some(prev) => {
            out.put_u8(1);
            out.put_i64_le(prev.create_revision);
            out.put_i64_le(prev.mod_revision);
            put_bytes(&mut out, &prev.value);
        }
    }
    out.to_vec()
}

/// Decodes the record stored at `revision`, with keys made relative by dropping
/// `prefix_len` bytes.
pub(super) fn decode_change(revision: i64, raw: &[u8], prefix_len: usize) -> Result<Change> {
    let mut buf = raw;
    let bad = || {
        Error::Corrupt(format!(
            "history record at revision {revision} is truncated"
        ))
    };
    let kind = take_u8(&mut buf).ok_or_else(bad)?;
    let full_key = take_bytes(&mut buf).ok_or_else(bad)?;
    let key = full_key.slice(prefix_len.min(full_key.len())..);
    let new = match kind {
        PUT => {
            let create_revision = take_i64(&mut buf).ok_or_else(bad)?;
            Some((create_revision, take_bytes(&mut buf).ok_or_else(bad)?))
        }
        DELETE => None,
        other => {
            return Err(Error::Corrupt(format!(
                "history record at revision {revision} has unknown kind {other}"
            )))
        }
    };
    let prev = match take_u8(&mut buf).ok_or_else(bad)? {
        0 => None,
        _ => Some(KeyValue {
            key: key.clone(),
            create_revision: take_i64(&mut buf).ok_or_else(bad)?,
            mod_revision: take_i64(&mut buf).ok_or_else(bad)?,
            value: take_bytes(&mut buf).ok_or_else(bad)?,
        }),
    };
    Ok(Change { key, new, prev })
}

impl Change {
    /// The watch event this change is, at `revision`.
    pub(super) fn into_event(self, revision: i64) -> Result<Event> {
        match (self.new, self.prev) {
            (Some((create_revision, value)), _) => Ok(Event::Put(KeyValue {
                key: self.key,
                value,
                create_revision,
                mod_revision: revision,
            })),
            (None, Some(prev)) => Ok(Event::Delete { revision, prev }),
            (None, None) => Err(Error::Corrupt(format!(
                "delete at revision {revision} has no previous value"
            ))),
        }
    }
}

fn corrupt(key: &[u8], what: &str) -> Error {
    Error::Corrupt(format!("{what} for key {}", String::from_utf8_lossy(key)))
}

fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u32_le(bytes.len() as u32);
    out.put_slice(bytes);
}

fn take_u8(buf: &mut &[u8]) -> Option<u8> {
    (buf.remaining() >= 1).then(|| buf.get_u8())
}

fn take_i64(buf: &mut &[u8]) -> Option<i64> {
    (buf.remaining() >= 8).then(|| buf.get_i64_le())
}

fn take_bytes(buf: &mut &[u8]) -> Option<Bytes> {
    if buf.remaining() < 4 {
        return None;
    }
    let len = buf.get_u32_le() as usize;
    (buf.remaining() >= len).then(|| buf.copy_to_bytes(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_with_relative_keys() {
        let prev = KeyValue {
            key: Bytes::from_static(b"/pods/a"),
            value: Bytes::from_static(b"old"),
            create_revision: 3,
            mod_revision: 4,
        };
        let change = Change {
            key: Bytes::from_static(b"/registry/pods/a"),
            new: Some((3, Bytes::from_static(b"new"))),
            prev: Some(prev.clone()),
        };
        let decoded = decode_change(9, &encode_change(&change), "/registry".len()).unwrap();
        assert_eq!(decoded.key, Bytes::from_static(b"/pods/a"));
        assert_eq!(decoded.prev, Some(prev));
        assert_eq!(
            decoded.into_event(9).unwrap(),
            Event::Put(KeyValue {
                key: Bytes::from_static(b"/pods/a"),
                value: Bytes::from_static(b"new"),
                create_revision: 3,
                mod_revision: 9,
            })
        );
    }

    #[test]
    fn truncated_records_are_corrupt_not_defaults() {
        let change = Change {
            key: Bytes::from_static(b"/k"),
            new: None,
            prev: None,
        };
        let raw = encode_change(&change);
        assert!(matches!(
            decode_change(1, &raw[..raw.len() - 1], 0),
            Err(Error::Corrupt(_))
        ));
        assert!(matches!(
            decode_current(Bytes::new(), b"short"),
            Err(Error::Corrupt(_))
        ));
    }
}
