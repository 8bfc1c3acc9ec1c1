//! What a file is called and what it is: the name a client gave, made safe to keep and to send
//! back, and the type told from the bytes.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::text;

/// Longest kept name, in bytes.
const MAX_NAME_BYTES: usize = 255;
/// What a file without a usable name is called.
const UNNAMED: &str = "attachment";

/// Raster image types a browser may show inline: they cannot carry script. (SVG and HTML can,
/// so they are always downloads.)
const INLINE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// RFC 5987 `attr-char`: everything else is percent-encoded in `filename*`.
const ATTR_CHAR_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// The last path segment of what the client sent, without control characters, the characters
/// names may not hold (bidirectional overrides that disguise an extension, invisible ones: see
/// `text::is_deceptive`) or leading dots, trimmed, and at most 255 bytes; `attachment` when
/// nothing is left.
pub fn sanitize_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !text::is_deceptive(*c))
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let mut name = String::new();
    for c in trimmed.chars() {
        if name.len() + c.len_utf8() > MAX_NAME_BYTES {
            break;
        }
        name.push(c);
    }
    let name = name.trim_end().to_owned();
    if name.is_empty() {
        UNNAMED.into()
    } else {
        name
    }
}

/// Whether a browser may show a file of this (sniffed) type in the page.
pub fn shown_inline(content_type: &str) -> bool {
    INLINE_TYPES.contains(&content_type)
}

/// `Content-Disposition` (RFC 6266) for a stored name: an ASCII `filename` for old clients and
/// the exact name in `filename*` (RFC 5987).
pub fn content_disposition(filename: &str, inline: bool) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let kind = if inline { "inline" } else { "attachment" };
    let encoded = utf8_percent_encode(filename, ATTR_CHAR_ESCAPES);
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// The type of a file from its first bytes; text that is valid UTF-8 is `text/plain`, anything
/// else unknown is `application/octet-stream`.
pub(super) fn sniff(head: &[u8]) -> String {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_owned();
    }
    let text = match std::str::from_utf8(head) {
        Ok(_) => true,
        // The sample may end in the middle of a character.
        Err(e) => e.error_len().is_none(),
    };
    if !head.is_empty() && text && !head.contains(&0) {
        "text/plain; charset=utf-8".into()
    } else {
        "application/octet-stream".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_paths_controls_and_disguises() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename(r"C:\Users\me\report.pdf"), "report.pdf");
        assert_eq!(sanitize_filename("a\u{0}b\r\nc.txt"), "abc.txt");
        assert_eq!(
            sanitize_filename("invoice\u{202E}fdp.exe"),
            "invoicefdp.exe"
        );
        assert_eq!(sanitize_filename("  .htaccess "), "htaccess");
        assert_eq!(sanitize_filename(""), "attachment");
        assert_eq!(sanitize_filename("/"), "attachment");
        assert_eq!(sanitize_filename("..."), "attachment");
        assert_eq!(
            sanitize_filename("Überblick – März.xlsx"),
            "Überblick – März.xlsx"
        );
        let long = "é".repeat(300);
        let kept = sanitize_filename(&long);
        assert!(kept.len() <= 255 && kept.chars().all(|c| c == 'é'));
    }

    #[test]
    fn dispositions_carry_an_ascii_fallback_and_the_exact_name() {
        assert_eq!(
            content_disposition("report.pdf", false),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            content_disposition("naïve \"quote\".png", true),
            "inline; filename=\"na_ve _quote_.png\"; filename*=UTF-8''na%C3%AFve%20%22quote%22.png"
        );
    }

    #[test]
    fn types_come_from_the_bytes() {
        let png = [
            0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D,
        ];
        assert_eq!(sniff(&png), "image/png");
        assert_eq!(sniff(b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(
            sniff("plain words, ünïcode".as_bytes()),
            "text/plain; charset=utf-8"
        );
        assert_eq!(sniff(&[0xE2, 0x82]), "text/plain; charset=utf-8");
        assert_eq!(sniff(&[0, 1, 2, 0xFF]), "application/octet-stream");
        assert_eq!(sniff(b""), "application/octet-stream");
        assert!(shown_inline("image/png"));
        for never in ["image/svg+xml", "text/html", "text/plain; charset=utf-8"] {
            assert!(!shown_inline(never), "{never}");
        }
    }
}
