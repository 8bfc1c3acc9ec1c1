//! Rules for text people type (names, titles, descriptions, comments), shared by every module,
//! and the OpenAPI schemas that state the same rules.

use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

use crate::error::Validator;

/// Names and titles.
pub const MAX_LINE: usize = 200;
/// Descriptions and comments.
pub const MAX_TEXT: usize = 65_536;

/// One line: no control characters, no invisible or direction-changing characters, and at least
/// one character that is not white space.
pub(crate) const LINE_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f\u200b\u202a-\u202e\u2060\u2066-\u2069\ufeff]*[^\s\u0000-\u001f\u007f-\u009f\u200b\u202a-\u202e\u2060\u2066-\u2069\ufeff][^\u0000-\u001f\u007f-\u009f\u200b\u202a-\u202e\u2060\u2066-\u2069\ufeff]*$";
/// Text: line breaks and tabs, but no other control characters.
const TEXT_PATTERN: &str = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$";
/// Text that must say something (a comment).
const BODY_PATTERN: &str = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$";

/// A one-line value (`LINE_PATTERN`) of at most `max` characters.
pub fn check_line(v: &mut Validator, field: &str, value: &str, max: usize) {
    v.check(!value.trim().is_empty(), field, "must not be blank");
    check_length(v, field, value, max);
    v.check(
        !value.chars().any(char::is_control),
        field,
        "must not contain control characters",
    );
    v.check(
        !value.chars().any(is_deceptive),
        field,
        "must not contain invisible or direction-changing characters",
    );
}

/// Characters that make a name or title show something other than what it is: bidirectional
/// overrides, embeddings and isolates, the zero-width space, the word joiner and the byte-order
/// mark. (The directional marks LRM, RLM and ALM stay: they only settle the direction of
/// neutral characters, and Hebrew and Arabic text needs them; so do zero-width joiners and
/// non-joiners, which several scripts and emoji need.)
pub(crate) fn is_deceptive(c: char) -> bool {
    matches!(c,
        '\u{200b}' | '\u{202a}'..='\u{202e}' | '\u{2060}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Text (`TEXT_PATTERN`, or `BODY_PATTERN` when `required`) of at most `max` characters.
pub fn check_text(v: &mut Validator, field: &str, value: &str, max: usize, required: bool) {
    if required {
        v.check(!value.trim().is_empty(), field, "must not be blank");
    }
    check_length(v, field, value, max);
    v.check(
        !value
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')),
        field,
        "must not contain control characters other than line breaks and tabs",
    );
}

fn check_length(v: &mut Validator, field: &str, value: &str, max: usize) {
    v.check(
        value.chars().count() <= max,
        field,
        &format!("must be at most {max} characters"),
    );
}

/// A name or title field.
pub fn line_schema() -> Object {
    string_schema(LINE_PATTERN, Some(MAX_LINE), false)
}

/// The same where `null` (in a patch: "leave as it is") is allowed.
pub fn optional_line_schema() -> Object {
    string_schema(LINE_PATTERN, Some(MAX_LINE), true)
}

/// An optional description (`null` clears it in a patch).
pub fn optional_text_schema() -> Object {
    let mut schema = string_schema(TEXT_PATTERN, Some(MAX_TEXT), true);
    schema.min_length = None;
    schema
}

/// A comment body.
pub fn body_schema() -> Object {
    string_schema(BODY_PATTERN, Some(MAX_TEXT), false)
}

/// A non-empty string matching `pattern`.
pub(crate) fn string_schema(pattern: &str, max_length: Option<usize>, nullable: bool) -> Object {
    let kind = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .min_length(Some(1))
        .max_length(max_length)
        .pattern(Some(pattern))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_ok(s: &str) -> bool {
        let mut v = Validator::default();
        check_line(&mut v, "f", s, 5);
        v.finish().is_ok()
    }

    fn text_ok(s: &str, required: bool) -> bool {
        let mut v = Validator::default();
        check_text(&mut v, "f", s, 5, required);
        v.finish().is_ok()
    }

    #[test]
    fn lines_and_texts() {
        assert!(line_ok("abc") && line_ok(" é ") && line_ok("ééééé"));
        assert!(!line_ok("") && !line_ok("   ") && !line_ok("abcdef"));
        assert!(!line_ok("a\nb") && !line_ok("a\u{85}"));
        assert!(text_ok("", false) && text_ok("a\nb\t", false));
        assert!(!text_ok("", true) && !text_ok(" \n", true) && !text_ok("a\u{1}", false));
        assert!(!text_ok("abcdef", false));
    }

    #[test]
    fn lines_refuse_what_would_disguise_them() {
        for sneaky in ["ab\u{202e}c", "a\u{200b}b", "\u{2066}ab", "ab\u{feff}"] {
            assert!(!line_ok(sneaky), "{sneaky:?}");
        }
        // Joiners are ordinary text in several scripts and in emoji; marks in right-to-left
        // text.
        assert!(line_ok("👩\u{200d}💻"));
        assert!(line_ok("שלום\u{200f}") && line_ok("a\u{200e}") && line_ok("ع\u{61c}"));
    }
}

/// What is left of an erased person where their name or address stood.
#[derive(Clone, Debug)]
pub struct Tombstone {
    /// "Erased person 7f3a".
    pub name: String,
    /// `erased-7f3a…@invalid`: never deliverable, and unique to the person.
    pub address: String,
}

impl Tombstone {
    pub fn of(id: uuid::Uuid) -> Self {
        let hex = id.simple().to_string();
        Self {
            name: format!("Erased person {}", &hex[hex.len() - 4..]),
            address: format!("erased-{hex}@invalid"),
        }
    }
}

/// A person's name and addresses, and what replaces them once they are erased.
#[derive(Clone, Debug)]
pub struct Traces {
    pub name: String,
    /// Lowercase.
    pub addresses: Vec<String>,
    pub tombstone: Tombstone,
}

impl Traces {
    /// `text` with every address (any case) and the name replaced by the tombstone's; `None`
    /// when nothing was there.
    pub fn scrub(&self, text: &str) -> Option<String> {
        let mut out = text.to_owned();
        for address in &self.addresses {
            out = replace_ignoring_case(&out, address, &self.tombstone.address);
        }
        if self.name.chars().count() >= 3 {
            out = out.replace(&self.name, &self.tombstone.name);
        }
        (out != text).then_some(out)
    }

    /// Scrubs every string inside `value`; true when something changed.
    pub fn scrub_json(&self, value: &mut serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(s) => match self.scrub(s) {
                Some(clean) => {
                    *s = clean;
                    true
                }
                None => false,
            },
            serde_json::Value::Array(items) => self.scrub_all(items.iter_mut()),
            serde_json::Value::Object(map) => self.scrub_all(map.values_mut()),
            _ => false,
        }
    }

    /// Scrubs every one of `values` (none is skipped once one changed).
    fn scrub_all<'a>(&self, values: impl Iterator<Item = &'a mut serde_json::Value>) -> bool {
        let mut changed = false;
        for value in values {
            changed |= self.scrub_json(value);
        }
        changed
    }
}

fn replace_ignoring_case(text: &str, needle: &str, with: &str) -> String {
    if needle.is_empty() {
        return text.to_owned();
    }
    let lower = text.to_lowercase();
    // Lowercasing may change byte lengths outside ASCII: replace exactly only then.
    if lower.len() != text.len() {
        return text.replace(needle, with);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = lower[at..].find(needle) {
        out.push_str(&text[at..at + found]);
        out.push_str(with);
        at += found + needle.len();
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod traces_tests {
    use super::*;

    #[test]
    fn names_and_addresses_give_way_to_the_tombstone() {
        let id = uuid::Uuid::from_u128(0x7f3a);
        let traces = Traces {
            name: "Carla Customer".into(),
            addresses: vec!["carla@example.com".into()],
            tombstone: Tombstone::of(id),
        };
        assert_eq!(traces.tombstone.name, "Erased person 7f3a");
        let text = "Carla Customer <Carla@Example.com> wrote";
        assert_eq!(
            traces.scrub(text).unwrap(),
            format!("Erased person 7f3a <{}> wrote", traces.tombstone.address)
        );
        assert!(traces.scrub("nothing of her").is_none());
        let mut json = serde_json::json!({"address": "carla@example.com", "n": 1, "list": ["x", "Carla Customer"]});
        assert!(traces.scrub_json(&mut json));
        assert_eq!(json["list"][1], "Erased person 7f3a");
    }
}
