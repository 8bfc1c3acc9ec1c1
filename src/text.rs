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
