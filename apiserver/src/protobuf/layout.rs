//! The schema compiled for the encoder, once, when first used: message references resolved to
//! indices and each message's JSON names to its fields, so encoding a nested message costs an
//! index instead of hashing its proto name, and a JSON key one look-up among its message's names
//! instead of a look-up of every field the message has in the JSON.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::schema::{schema, FieldType, Label, Message, Scalar, Shape};

/// Every message of the schema, shaped or not, by index.
pub(super) struct Layouts {
    messages: Vec<Layout>,
    by_name: HashMap<&'static str, usize>,
}

/// One message as the encoder writes it.
pub(super) struct Layout {
    /// How its JSON departs from one key per field, if it does.
    pub(super) shape: Option<Shape>,
    /// Its fields in the order gogo writes them: ascending tags, an embedded struct's own
    /// fields right after the embedded struct's slot.
    pub(super) slots: Vec<Slot>,
    /// JSON name → field and its index in `slots`. An embedded struct's fields are keys of
    /// the enclosing JSON object, so they are here and the embedded struct itself is not.
    names: Names,
    /// Whether some slot is an embedded struct, which is written even when none of its
    /// fields is.
    pub(super) embeds: bool,
}

pub(super) enum Slot {
    /// A field, found by its JSON name.
    Field,
    /// An embedded Go struct, field `tag`, whose fields are the slots up to `end`.
    Embedded { tag: u32, end: usize },
}

#[derive(Clone, Copy)]
pub(super) struct Field {
    pub(super) tag: u32,
    pub(super) json_name: &'static str,
    pub(super) label: Label,
    pub(super) ty: Type,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Type {
    Scalar(Scalar),
    /// The message's index in [`Layouts`].
    Message(usize),
}

static LAYOUTS: LazyLock<Layouts> = LazyLock::new(Layouts::build);

/// The layouts, built on first use from [`schema`].
pub(super) fn layouts() -> &'static Layouts {
    &LAYOUTS
}

impl Layouts {
    /// Panics on a schema whose references do not resolve, whose embedded structs share a JSON
    /// name with their container, or whose shaped messages lack a part: the generator writes
    /// none of these, and the tests build the layouts.
    fn build() -> Self {
        let schema = schema();
        // Composite-shaped messages have fields too: list each name once.
        let names: Vec<&'static str> = schema
            .messages()
            .map(|(name, _)| name)
            .chain(
                schema
                    .shapes()
                    .map(|(name, _)| name)
                    .filter(|name| schema.message(name).is_none()),
            )
            .collect();
        let by_name: HashMap<&'static str, usize> = names
            .iter()
            .enumerate()
            .map(|(index, name)| (*name, index))
            .collect();
        let messages = names
            .iter()
            .map(|name| Layout::new(name, &by_name))
            .collect();
        Layouts { messages, by_name }
    }

    /// The layout of message `name` (`api.core.v1.Pod`).
    pub(super) fn named(&self, name: &str) -> Option<&Layout> {
        self.by_name.get(name).map(|&index| &self.messages[index])
    }

    pub(super) fn get(&self, index: usize) -> &Layout {
        &self.messages[index]
    }
}

impl Layout {
    fn new(name: &'static str, by_name: &HashMap<&'static str, usize>) -> Self {
        let schema = schema();
        let mut layout = Layout {
            shape: schema.shape(name),
            slots: Vec::new(),
            names: Names::default(),
            embeds: false,
        };
        let mut names = Vec::new();
        if let Some(message) = schema.message(name) {
            layout.add_fields(message, &mut names, by_name);
        }
        names.sort_unstable_by_key(|(field, _)| field.json_name);
        if let Some(pair) = names
            .windows(2)
            .find(|pair| pair[0].0.json_name == pair[1].0.json_name)
        {
            panic!("{name} has two fields named {}", pair[0].0.json_name);
        }
        layout.names = Names::new(&names);
        let parts: &[&str] = match layout.shape {
            Some(Shape::Items) => &["items"],
            Some(Shape::SchemaOrArray) => &["schema", "jSONSchemas"],
            Some(Shape::SchemaOrBool) => &["allows", "schema"],
            Some(Shape::SchemaOrStringArray) => &["schema", "property"],
            _ => &[],
        };
        for part in parts {
            layout.part(part);
        }
        layout
    }

    /// Appends the slots of `message`, recursing into embedded structs, and their JSON names
    /// to `names`.
    fn add_fields(
        &mut self,
        message: &'static Message,
        names: &mut Vec<(Field, usize)>,
        by_name: &HashMap<&'static str, usize>,
    ) {
        for (tag, field) in message.fields() {
            match (field.label, &field.ty) {
                (Label::Inline, FieldType::Message(inner_name)) => {
                    let inner = schema().message(inner_name).unwrap_or_else(|| {
                        panic!("schema.json embeds {inner_name}, which has no fields")
                    });
                    let at = self.slots.len();
                    self.slots.push(Slot::Embedded { tag, end: at });
                    self.add_fields(inner, names, by_name);
                    self.slots[at] = Slot::Embedded {
                        tag,
                        end: self.slots.len(),
                    };
                    self.embeds = true;
                }
                (label, ty) => {
                    let ty = match ty {
                        FieldType::Scalar(scalar) => Type::Scalar(*scalar),
                        FieldType::Message(type_name) => {
                            Type::Message(*by_name.get(type_name.as_str()).unwrap_or_else(|| {
                                panic!("schema.json refers to unknown message {type_name}")
                            }))
                        }
                    };
                    let field = Field {
                        tag,
                        json_name: &field.json_name,
                        label,
                        ty,
                    };
                    names.push((field, self.slots.len()));
                    self.slots.push(Slot::Field);
                }
            }
        }
    }

    /// The field whose JSON name is `json_name`, and its slot.
    pub(super) fn field(&self, json_name: &[u8]) -> Option<(usize, &Field)> {
        self.names.get(json_name)
    }

    /// The field of a shaped message that holds one form of its JSON (`"schema"`), which
    /// [`Layouts::build`] checked it has.
    pub(super) fn part(&self, json_name: &str) -> &Field {
        match self.field(json_name.as_bytes()) {
            Some((_, field)) => field,
            None => panic!("a shaped message has no {json_name} field"),
        }
    }
}

/// A message's JSON names → fields: open addressing in a table at most half full, keyed by a
/// name's length and its first and last eight bytes, which are all of the names up to 16 bytes
/// long, so most look-ups compare two words instead of calling memcmp, and find the field
/// beside them. Looked up once per key read, this is the encoder's busiest table; it holds only
/// the schema's names, so no JSON can crowd it.
#[derive(Default)]
struct Names {
    table: Vec<Option<Name>>,
}

struct Name {
    words: Words,
    slot: usize,
    field: Field,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Words {
    length: usize,
    head: u64,
    tail: u64,
}

impl Words {
    fn of(text: &[u8]) -> Self {
        let word = |bytes: &[u8]| {
            bytes
                .iter()
                .rev()
                .fold(0, |word, &byte| word << 8 | u64::from(byte))
        };
        let length = text.len();
        let (head, tail) = match (text.first_chunk::<8>(), text.last_chunk::<8>()) {
            (Some(head), Some(tail)) => (u64::from_le_bytes(*head), u64::from_le_bytes(*tail)),
            _ => (word(text), 0),
        };
        Words { length, head, tail }
    }

    fn hash(self) -> usize {
        let mixed = (self.head ^ self.tail.rotate_left(32) ^ self.length as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (mixed >> 32) as usize
    }
}

impl Names {
    fn new(fields: &[(Field, usize)]) -> Self {
        let size = (fields.len() * 2).next_power_of_two();
        let mut table: Vec<Option<Name>> = (0..size).map(|_| None).collect();
        for &(field, slot) in fields {
            let words = Words::of(field.json_name.as_bytes());
            let mut at = words.hash() & (size - 1);
            while table[at].is_some() {
                at = (at + 1) & (size - 1);
            }
            table[at] = Some(Name { words, slot, field });
        }
        Names { table }
    }

    fn get(&self, text: &[u8]) -> Option<(usize, &Field)> {
        let mask = self.table.len().checked_sub(1)?;
        let words = Words::of(text);
        let mut at = words.hash() & mask;
        loop {
            let name = self.table[at].as_ref()?;
            if name.words == words && (text.len() <= 16 || name.field.json_name.as_bytes() == text)
            {
                return Some((name.slot, &name.field));
            }
            at = (at + 1) & mask;
        }
    }
}
