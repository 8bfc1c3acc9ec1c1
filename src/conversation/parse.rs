//! Reading an inbound message: MIME, charsets and transfer encodings are mail-parser's; what
//! Docket makes of them (the sender, the threading ids, the loop signals, the text without its
//! quoted history) is here, as pure functions.

use mail_parser::{HeaderValue, MessageParser, MimeHeaders};

use crate::error::{Error, Result};

/// Longest body kept from a message (characters); the rest is cut with a note.
const MAX_BODY: usize = 60_000;
/// Longest subject kept.
const MAX_SUBJECT: usize = 250;

/// What Docket needs of an inbound message.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inbound {
    /// Without angle brackets, lower-cased; `None` when the message has none.
    pub message_id: Option<String>,
    /// `In-Reply-To` then `References` (newest first), without brackets, lower-cased.
    pub parents: Vec<String>,
    /// The `References` chain as sent (oldest first), for our replies to continue it.
    pub references: Vec<String>,
    pub from_address: String,
    pub from_name: Option<String>,
    /// Every `To` and `Cc` address, lower-cased.
    pub recipients: Vec<String>,
    /// The `Cc` addresses alone.
    pub cc: Vec<String>,
    pub subject: String,
    /// The new text of the message: HTML turned into text, quoted history trimmed.
    pub text: String,
    /// Attached files, inline images included: `(name as sent, bytes)`.
    pub files: Vec<(String, Vec<u8>)>,
    /// Why this message must not make a ticket or an automatic answer, if it must not.
    pub automatic: Option<String>,
    /// For a delivery report: the addresses that bounced.
    pub bounced: Vec<String>,
}

fn unparseable(detail: impl Into<String>) -> Error {
    Error::Unprocessable {
        code: "unparseable_email",
        detail: detail.into(),
    }
}

/// Reads a raw RFC 5322 message. `own_addresses` are Docket's (its `X-Loop` marker).
pub fn parse(raw: &[u8], own_address: &str) -> Result<Inbound> {
    if raw.is_empty() {
        return Err(unparseable("the message is empty"));
    }
    let message = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| unparseable("this is not an RFC 5322 message"))?;
    if message.headers().is_empty() {
        return Err(unparseable("the message has no header"));
    }
    let from = message
        .from()
        .and_then(|a| a.first())
        .ok_or_else(|| unparseable("the message has no From address"))?;
    let from_address = from
        .address()
        .map(|a| a.trim().to_lowercase())
        .filter(|a| is_address(a))
        .ok_or_else(|| unparseable("the From address is not a mail address"))?;
    let from_name = from
        .name()
        .map(|n| clean_line(n, 200))
        .filter(|n| !n.is_empty());

    let message_id = message.message_id().and_then(normalize_id);
    let mut parents = ids(message.in_reply_to());
    let references = ids(message.references());
    parents.extend(references.iter().rev().cloned());
    parents.dedup();

    let addresses = |list: &mut dyn Iterator<Item = &mail_parser::Address>| {
        let mut found: Vec<String> = list
            .flat_map(|a| a.iter())
            .filter_map(|a| a.address())
            .map(|a| a.trim().to_lowercase())
            .filter(|a| is_address(a))
            .collect();
        found.sort();
        found.dedup();
        found
    };
    let cc = addresses(&mut message.all_cc());
    let mut recipients = addresses(&mut message.all_to());
    recipients.extend(cc.iter().cloned());
    recipients.sort();
    recipients.dedup();

    let subject = clean_line(message.subject().unwrap_or_default(), MAX_SUBJECT);
    let body = message
        .body_text(0)
        .map(|t| t.into_owned())
        .unwrap_or_default();
    let text = limit(&trim_quoted(&body), MAX_BODY);

    let header = |name: &str| message.header_raw(name).map(|v| v.trim().to_lowercase());
    let content_type = header("Content-Type").unwrap_or_default();
    let is_report = content_type.starts_with("multipart/report");
    let automatic = automatic_reason(
        &from_address,
        header("Auto-Submitted").as_deref(),
        header("Precedence").as_deref(),
        header("X-Auto-Response-Suppress").is_some(),
        message
            .header_values("X-Loop")
            .filter_map(|v| v.as_text())
            .any(|v| v.trim().eq_ignore_ascii_case(own_address)),
        is_report,
        header("List-Id").is_some(),
    );
    let bounced = if is_report {
        final_recipients(&String::from_utf8_lossy(raw))
    } else {
        Vec::new()
    };
    Ok(Inbound {
        message_id,
        parents,
        references,
        from_address,
        from_name,
        recipients,
        cc,
        subject,
        text,
        files: message
            .attachments()
            .map(|part| {
                let name = part.attachment_name().unwrap_or_default().to_owned();
                (name, part.contents().to_vec())
            })
            .collect(),
        automatic,
        bounced,
    })
}

/// The message ids of a header, without brackets, lower-cased.
fn ids(value: &HeaderValue) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => t.split_whitespace().filter_map(normalize_id).collect(),
        HeaderValue::TextList(list) => list
            .iter()
            .flat_map(|t| t.split_whitespace())
            .filter_map(normalize_id)
            .collect(),
        _ => Vec::new(),
    }
}

/// `<Abc@Host>` → `abc@host`; `None` for what cannot be a message id.
pub fn normalize_id(id: &str) -> Option<String> {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!id.is_empty() && id.len() <= 250 && !id.chars().any(|c| c.is_whitespace() || c.is_control()))
        .then(|| id.to_lowercase())
}

fn is_address(a: &str) -> bool {
    matches!(a.split_once('@'), Some((local, domain))
        if !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
        && a.len() <= 254
        && !a.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// One line of at most `max` characters, without control characters.
fn clean_line(s: &str, max: usize) -> String {
    let line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
    line.chars().take(max).collect()
}

fn limit(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}\n\n[… the rest of this message was cut]", &text[..end]),
        None => text.to_owned(),
    }
}

/// RFC 3834 and common practice: why a message is automatic (and must get no automatic
/// answer, nor make a ticket), if it is.
pub fn automatic_reason(
    from: &str,
    auto_submitted: Option<&str>,
    precedence: Option<&str>,
    suppress_header: bool,
    our_loop: bool,
    is_report: bool,
    list: bool,
) -> Option<String> {
    let local = from.split('@').next().unwrap_or_default();
    if is_report {
        return Some("delivery report (bounce)".into());
    }
    if our_loop {
        return Some("X-Loop: sent by Docket itself".into());
    }
    if let Some(v) = auto_submitted.map(|v| v.split(';').next().unwrap_or_default().trim())
        && v != "no"
    {
        return Some(format!("Auto-Submitted: {v}"));
    }
    if let Some(p) = precedence
        && ["bulk", "junk", "list"].contains(&p)
    {
        return Some(format!("Precedence: {p}"));
    }
    if suppress_header {
        return Some("X-Auto-Response-Suppress".into());
    }
    if ["mailer-daemon", "postmaster"].contains(&local) {
        return Some(format!("sender {local}"));
    }
    if list {
        return Some("mailing list (List-Id)".into());
    }
    None
}

/// The recipients a delivery status report says failed (`Final-Recipient: rfc822; a@b`).
fn final_recipients(raw: &str) -> Vec<String> {
    let mut found: Vec<String> = raw
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("final-recipient")
                .then(|| {
                    value
                        .rsplit(';')
                        .next()
                        .unwrap_or(value)
                        .trim()
                        .to_lowercase()
                })
        })
        .map(|a| a.trim_matches(['<', '>']).to_owned())
        .filter(|a| is_address(a))
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The new part of a reply: everything above the first line that starts quoted history
/// (`On … wrote:`, `-----Original Message-----`, a `From:` block, a run of `>` lines, or
/// Docket's own separator), with trailing blank lines dropped. A message that is nothing
/// but a quote keeps its text.
pub fn trim_quoted(body: &str) -> String {
    let body = body.replace("\r\n", "\n");
    let lines: Vec<&str> = body.lines().collect();
    let mut cut = lines.len();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        let wrote = t.ends_with("wrote:")
            && (t.starts_with("On ") || t.starts_with("Le ") || t.starts_with("Am "));
        // "On Mon, … <a@b>\nwrote:" split over two lines.
        let wrote_split = t == "wrote:" && i > 0 && lines[i - 1].trim().starts_with("On ");
        let original = t.starts_with("-----Original Message-----")
            || t.starts_with("-------- Original Message")
            || t.starts_with("-------- Forwarded Message");
        let outlook = t.starts_with("From:")
            && lines
                .get(i + 1)
                .is_some_and(|n| n.trim().starts_with("Sent:") || n.trim().starts_with("Date:"));
        let quoted = t.starts_with('>')
            && lines[i..]
                .iter()
                .take_while(|l| !l.trim().is_empty())
                .all(|l| l.trim().starts_with('>'));
        if wrote || wrote_split || original || outlook || quoted {
            cut = if wrote_split { i - 1 } else { i };
            break;
        }
    }
    let kept = lines[..cut].join("\n");
    let kept = kept.trim_end();
    if kept.trim().is_empty() {
        body.trim().to_owned()
    } else {
        kept.trim_start_matches('\n').to_owned()
    }
}

/// The `[KEY-N]` tag of a subject, if it has one.
pub fn subject_tag(subject: &str) -> Option<String> {
    let mut rest = subject;
    while let Some(start) = rest.find('[') {
        let after = &rest[start + 1..];
        let end = after.find(']')?;
        let tag = &after[..end];
        if let Some((key, number)) = tag.rsplit_once('-')
            && (2..=10).contains(&key.len())
            && key.bytes().all(|b| b.is_ascii_uppercase())
            && !number.is_empty()
            && number.len() <= 12
            && number.bytes().all(|b| b.is_ascii_digit())
        {
            return Some(tag.to_owned());
        }
        rest = &after[end + 1..];
    }
    None
}

/// The signed reference in a `local+<reference>@…` address, if it has one.
pub fn plus_reference(address: &str) -> Option<&str> {
    let local = address.split('@').next()?;
    local.split_once('+').map(|(_, r)| r)
}

/// The signed reference in one of Docket's own message ids (`docket.<reference>.<…>@…`).
pub fn id_reference(id: &str) -> Option<&str> {
    id.strip_prefix("docket.")?.split(['.', '@']).next()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = "From: Ann Customer <Ann@Example.COM>\r\nTo: help@acme.test\r\nCc: Bob <bob@example.com>\r\nSubject: Printer\r\n  on fire\r\nMessage-ID: <ABC@mail.example.com>\r\nIn-Reply-To: <docket.tX-1@acme.test>\r\nReferences: <first@x> <docket.tX-1@acme.test>\r\n\r\nIt is on fire.\r\n\r\nOn Mon, 1 Jan 2026, Help <help@acme.test> wrote:\r\n> old text\r\n";

    #[test]
    fn a_plain_message_gives_its_sender_ids_and_new_text() {
        let m = parse(PLAIN.as_bytes(), "help@acme.test").unwrap();
        assert_eq!(m.from_address, "ann@example.com");
        assert_eq!(m.from_name.as_deref(), Some("Ann Customer"));
        assert_eq!(m.message_id.as_deref(), Some("abc@mail.example.com"));
        assert_eq!(m.parents, vec!["docket.tx-1@acme.test", "first@x"]);
        assert_eq!(m.references, vec!["first@x", "docket.tx-1@acme.test"]);
        assert_eq!(m.recipients, vec!["bob@example.com", "help@acme.test"]);
        assert_eq!(m.subject, "Printer on fire");
        assert_eq!(m.text, "It is on fire.");
        assert_eq!(m.automatic, None);
    }

    #[test]
    fn quoted_printable_charsets_and_html_only_mail_become_text() {
        let qp = "From: a@b.c\r\nSubject: =?ISO-8859-1?Q?Caf=E9?=\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 cr=E8me, tr=\r\nes bien\r\n";
        let m = parse(qp.as_bytes(), "x@y.z").unwrap();
        assert_eq!(m.subject, "Café");
        assert_eq!(m.text, "Café crème, tres bien");
        let html = "From: a@b.c\r\nSubject: h\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hello <b>there</b><script>alert(1)</script></p><p>Second &amp; last</p>";
        let m = parse(html.as_bytes(), "x@y.z").unwrap();
        assert!(m.text.contains("Hello there"), "{}", m.text);
        assert!(m.text.contains("Second & last"), "{}", m.text);
        assert!(!m.text.contains('<'), "{}", m.text);
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        for junk in [
            &b""[..],
            b"\0\0\0",
            b"no header here",
            b"Subject: x\r\n\r\nno sender",
        ] {
            assert!(parse(junk, "x@y.z").is_err(), "{junk:?}");
        }
    }

    #[test]
    fn automatic_mail_is_recognised() {
        let r = |from: &str, auto: Option<&str>, prec: Option<&str>, s, l, rep, list| {
            automatic_reason(from, auto, prec, s, l, rep, list)
        };
        assert_eq!(r("a@b", None, None, false, false, false, false), None);
        assert_eq!(r("a@b", Some("no"), None, false, false, false, false), None);
        assert!(
            r(
                "a@b",
                Some("auto-replied"),
                None,
                false,
                false,
                false,
                false
            )
            .is_some()
        );
        assert!(r("a@b", None, Some("bulk"), false, false, false, false).is_some());
        assert!(r("a@b", None, Some("junk"), false, false, false, false).is_some());
        assert!(r("a@b", None, None, true, false, false, false).is_some());
        assert!(r("a@b", None, None, false, true, false, false).is_some());
        assert!(r("a@b", None, None, false, false, true, false).is_some());
        assert!(r("mailer-daemon@b", None, None, false, false, false, false).is_some());
        assert!(r("postmaster@b", None, None, false, false, false, false).is_some());
        assert!(r("a@b", None, None, false, false, false, true).is_some());
    }

    #[test]
    fn quoted_history_is_trimmed() {
        assert_eq!(trim_quoted("Yes.\n\nOn Tue, Ann wrote:\n> q"), "Yes.");
        assert_eq!(
            trim_quoted("Yes.\nOn Tue, 2 Jan 2026 at 10:00, Ann <a@b>\nwrote:\n> q"),
            "Yes."
        );
        assert_eq!(
            trim_quoted("Fine\n-----Original Message-----\nFrom: x"),
            "Fine"
        );
        assert_eq!(
            trim_quoted("Fine\n\nFrom: Help\nSent: Monday\nSubject: x"),
            "Fine"
        );
        assert_eq!(trim_quoted("Top\n> a\n> b\n"), "Top");
        // A quote inside the text (followed by more text) stays.
        assert_eq!(trim_quoted("See:\n> a\nabove"), "See:\n> a\nabove");
        assert_eq!(trim_quoted("> only a quote"), "> only a quote");
    }

    #[test]
    fn subject_tags_and_references_are_found() {
        assert_eq!(
            subject_tag("Re: [OPS-12] Printer").as_deref(),
            Some("OPS-12")
        );
        assert_eq!(subject_tag("[urgent] [AB-3]").as_deref(), Some("AB-3"));
        assert_eq!(subject_tag("[ops-12] x"), None);
        assert_eq!(subject_tag("[OPS-] x"), None);
        assert_eq!(subject_tag("[OPS-12"), None);
        assert_eq!(plus_reference("help+t12-ab@acme.test"), Some("t12-ab"));
        assert_eq!(plus_reference("help@acme.test"), None);
        assert_eq!(id_reference("docket.t12-ab.c34@acme.test"), Some("t12-ab"));
        assert_eq!(id_reference("other@x"), None);
    }

    #[test]
    fn bounces_name_their_failed_recipients() {
        let report = "From: MAILER-DAEMON@mx.test\r\nTo: help@acme.test\r\nSubject: Undelivered\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.test\r\n\r\nFinal-Recipient: rfc822; Gone@Example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n";
        let m = parse(report.as_bytes(), "help@acme.test").unwrap();
        assert_eq!(m.automatic.as_deref(), Some("delivery report (bounce)"));
        assert_eq!(m.bounced, vec!["gone@example.com"]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn any_bytes_parse_or_are_refused(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000)) {
            let _ = parse(&raw, "help@acme.test");
        }

        #[test]
        fn mangled_mime_never_panics(cut in 0usize..PLAIN.len(), junk in ".{0,40}", at in 0usize..PLAIN.len()) {
            let mut raw = PLAIN.as_bytes()[..cut.max(1)].to_vec();
            let at = at.min(raw.len());
            raw.splice(at..at, junk.bytes());
            let multipart = format!("From: a@b.c\r\nContent-Type: multipart/mixed; boundary=\"{junk}\"\r\n\r\n--{junk}\r\nContent-Type: text/plain; charset=\"{junk}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{junk}\r\n--{junk}");
            if let Ok(m) = parse(&raw, "help@acme.test") {
                proptest::prop_assert!(m.from_address.contains('@'));
                proptest::prop_assert!(m.subject.chars().count() <= MAX_SUBJECT);
            }
            let _ = parse(multipart.as_bytes(), "help@acme.test");
        }
    }
}
