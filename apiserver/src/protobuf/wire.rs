//! The protobuf wire format: a forgiving-where-upstream-is, strict-where-upstream-is reader.
//!
//! Errors carry the messages of the gogo-protobuf unmarshallers that kube-apiserver uses, so a
//! malformed body is rejected with the same words.

use super::DecodeError;

/// One field's payload, by wire type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
    /// A proto2 group, already skipped: no Kubernetes field uses one.
    Group,
}

impl WireValue<'_> {
    /// The wire type number, for "wrong wireType" errors.
    pub(super) fn wire_type(&self) -> u64 {
        match self {
            WireValue::Varint(_) => 0,
            WireValue::Fixed64(_) => 1,
            WireValue::Bytes(_) => 2,
            WireValue::Group => 3,
            WireValue::Fixed32(_) => 5,
        }
    }
}

/// Iterates the `(field number, value)` pairs of one encoded message.
pub(super) struct Fields<'a> {
    data: &'a [u8],
}

impl<'a> Fields<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Fields { data }
    }

    fn next_field(&mut self) -> Result<(u64, WireValue<'a>), DecodeError> {
        let key = read_varint(&mut self.data)?;
        let (number, wire_type) = (key >> 3, key & 7);
        if number == 0 || number > i32::MAX as u64 {
            return Err(malformed(format!(
                "proto: illegal tag {number} (wire type {wire_type})"
            )));
        }
        let value = match wire_type {
            0 => WireValue::Varint(read_varint(&mut self.data)?),
            1 => WireValue::Fixed64(u64::from_le_bytes(take_array(&mut self.data)?)),
            2 => WireValue::Bytes(read_length_delimited(&mut self.data)?),
            3 => {
                skip_group(&mut self.data, number)?;
                WireValue::Group
            }
            4 => return Err(malformed("proto: wiretype end group for non-group".into())),
            5 => WireValue::Fixed32(u32::from_le_bytes(take_array(&mut self.data)?)),
            _ => return Err(malformed(format!("proto: illegal wireType {wire_type}"))),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, WireValue<'a>), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.data.is_empty() {
            return None;
        }
        let field = self.next_field();
        if field.is_err() {
            self.data = &[];
        }
        Some(field)
    }
}

/// Reads a base-128 varint, as gogo does: at most ten bytes.
pub(super) fn read_varint(data: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let (&byte, rest) = data.split_first().ok_or_else(unexpected_eof)?;
        *data = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(malformed("proto: integer overflow".into()))
}

/// Splits off the packed elements of a repeated varint field.
pub(super) fn packed_varints(
    mut data: &[u8],
) -> impl Iterator<Item = Result<u64, DecodeError>> + '_ {
    std::iter::from_fn(move || (!data.is_empty()).then(|| read_varint(&mut data)))
}

/// Splits off the packed elements of a repeated fixed64 field.
pub(super) fn packed_fixed64(
    mut data: &[u8],
) -> impl Iterator<Item = Result<u64, DecodeError>> + '_ {
    std::iter::from_fn(move || {
        (!data.is_empty()).then(|| take_array(&mut data).map(u64::from_le_bytes))
    })
}

fn read_length_delimited<'a>(data: &mut &'a [u8]) -> Result<&'a [u8], DecodeError> {
    let length = read_varint(data)?;
    if length > i64::MAX as u64 {
        return Err(malformed(
            "proto: negative length found during unmarshaling".into(),
        ));
    }
    let length = usize::try_from(length).map_err(|_| unexpected_eof())?;
    if length > data.len() {
        return Err(unexpected_eof());
    }
    let (value, rest) = data.split_at(length);
    *data = rest;
    Ok(value)
}

fn take_array<const N: usize>(data: &mut &[u8]) -> Result<[u8; N], DecodeError> {
    let (head, rest) = data.split_first_chunk::<N>().ok_or_else(unexpected_eof)?;
    *data = rest;
    Ok(*head)
}

/// Skips to the end-group key matching `number`, through nested groups.
fn skip_group(data: &mut &[u8], number: u64) -> Result<(), DecodeError> {
    let mut open = vec![number];
    while let Some(&innermost) = open.last() {
        let key = read_varint(data)?;
        let (inner, wire_type) = (key >> 3, key & 7);
        match wire_type {
            0 => drop(read_varint(data)?),
            1 => drop(take_array::<8>(data)?),
            2 => drop(read_length_delimited(data)?),
            3 => open.push(inner),
            4 if inner == innermost => drop(open.pop()),
            4 => return Err(malformed("proto: unexpected end of group".into())),
            5 => drop(take_array::<4>(data)?),
            _ => return Err(malformed(format!("proto: illegal wireType {wire_type}"))),
        }
    }
    Ok(())
}

fn unexpected_eof() -> DecodeError {
    malformed("unexpected EOF".into())
}

fn malformed(message: String) -> DecodeError {
    DecodeError::Malformed(message)
}
