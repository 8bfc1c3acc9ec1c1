//! Reading an inbound message: MIME, charsets and transfer encodings are mail-parser's; what
//! Docket makes of them (the sender, the threading ids, the loop signals, the text without its
//! quoted history) is here, as pure functions.

use mail_parser::{HeaderValue, MessageParser, MimeHeaders};

use crate::{
    error::{Error, Result},
    text,
};

/// Longest body kept from a message (characters); the rest is cut with a note.
const MAX_BODY: usize = 60_000;
/// Longest subject kept.
const MAX_SUBJECT: usize = 250;
/// Most `To`/`Cc` addresses read from one message (the rest are not looked at).
const MAX_RECIPIENTS: usize = 1_000;

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
    /// Every `To` and `Cc` address, lower-cased, and where a mail system delivered it
    /// (`Delivered-To`, `X-Original-To`): where a delivery report may name a return path.
    pub recipients: Vec<String>,
    /// The `Cc` addresses alone, in the order written, each once.
    pub cc: Vec<String>,
    pub subject: String,
    /// The new text of the message: HTML turned into text, quoted history trimmed, control
    /// characters other than line breaks and tabs dropped.
    pub text: String,
    /// Attached files, inline images included: `(name as sent, bytes)`.
    pub files: Vec<(String, Vec<u8>)>,
    /// Why this message must not make a ticket or an automatic answer, if it must not.
    pub automatic: Option<String>,
    /// For a delivery report (`multipart/report`): the recipients its
    /// `message/delivery-status` part says failed. `None` for any other message.
    pub report: Option<Vec<String>>,
    /// Every `Authentication-Results` header, topmost (added last) first.
    pub authentication: Vec<AuthenticationResults>,
}

impl Inbound {
    /// Is the sender's address proven by a mail system Docket trusts? Only the topmost
    /// `Authentication-Results` of a trusted `authserv-id` counts (RFC 8601: a receiving system
    /// adds its own above what the message arrived with, so lower ones may be forged); it must
    /// say `dmarc=pass` for the From domain, or `dkim=pass` for a domain aligned with it.
    pub fn authenticated(&self, trusted: &[String]) -> bool {
        let domain = self.from_address.rsplit('@').next().unwrap_or_default();
        self.authentication
            .iter()
            .find(|r| {
                trusted
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(&r.authserv_id))
            })
            .is_some_and(|r| r.vouches_for(domain))
    }
}

/// One `Authentication-Results` header (RFC 8601), as far as Docket reads it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuthenticationResults {
    /// Lower-cased.
    pub authserv_id: String,
    /// Domains with `dmarc=pass` (`header.from`), lower-cased.
    pub dmarc_pass: Vec<String>,
    /// Domains with `dkim=pass` (`header.d`, or the domain of `header.i`), lower-cased.
    pub dkim_pass: Vec<String>,
}

impl AuthenticationResults {
    /// Reads one header's value; `None` when it names no authserv-id.
    pub fn parse(value: &str) -> Option<Self> {
        let value = strip_comments(value);
        let mut statements = value.split(';');
        let authserv_id = statements
            .next()?
            .split_whitespace()
            .next()?
            .trim()
            .to_lowercase();
        if authserv_id.is_empty() {
            return None;
        }
        let mut found = Self {
            authserv_id,
            ..Self::default()
        };
        for statement in statements {
            let mut words = statement.split_whitespace();
            let Some((method, result)) = words.next().and_then(|w| w.split_once('=')) else {
                continue;
            };
            let (method, result) = (method.to_ascii_lowercase(), result.to_ascii_lowercase());
            if result != "pass" {
                continue;
            }
            let props: Vec<(String, String)> = words
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_ascii_lowercase(), v.trim_matches('"').to_lowercase()))
                .collect();
            let prop = |name: &str| props.iter().find(|(k, _)| k == name).map(|(_, v)| v);
            match method.as_str() {
                "dmarc" => found.dmarc_pass.extend(prop("header.from").cloned()),
                "dkim" => found
                    .dkim_pass
                    .extend(prop("header.d").cloned().or_else(|| {
                        prop("header.i").and_then(|i| i.rsplit('@').next().map(str::to_owned))
                    })),
                _ => {}
            }
        }
        Some(found)
    }

    /// Does this header prove mail from `domain`? DMARC for exactly that domain, or DKIM for it
    /// or a parent of it (relaxed alignment).
    pub fn vouches_for(&self, domain: &str) -> bool {
        let domain = domain.to_ascii_lowercase();
        let aligned = |d: &String| {
            !d.is_empty() && (domain == *d || domain.ends_with(&format!(".{d}"))) && d.contains('.')
        };
        self.dmarc_pass.contains(&domain) || self.dkim_pass.iter().any(aligned)
    }
}

/// A header value without its `(comments)` (not nested deeper than they can be written).
fn strip_comments(value: &str) -> String {
    let mut depth = 0usize;
    value
        .chars()
        .filter(|c| match c {
            '(' => {
                depth += 1;
                false
            }
            ')' => {
                depth = depth.saturating_sub(1);
                false
            }
            _ => depth == 0,
        })
        .collect()
}

fn unparseable(detail: impl Into<String>) -> Error {
    Error::Unprocessable {
        code: "unparseable_email",
        detail: detail.into(),
    }
}

/// Reads a raw RFC 5322 message. `own_address` is Docket's (its `X-Loop` marker). Every step is
/// linear in the size of the message, and what one message can make Docket read is bounded
/// (recipients, body, subject), so its cost is bounded by `DOCKET_MAX_EMAIL_BYTES`.
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

    let cc = unique(addresses(&mut message.all_cc()));
    let mut recipients = addresses(&mut message.all_to());
    recipients.extend(cc.iter().cloned());
    for name in ["Delivered-To", "X-Original-To"] {
        recipients.extend(
            message
                .header_values(name)
                .filter_map(|v| v.as_text())
                .map(|v| v.trim().trim_matches(['<', '>']).to_lowercase())
                .filter(|a| is_address(a)),
        );
    }
    let recipients = unique(recipients);

    let subject = clean_line(message.subject().unwrap_or_default(), MAX_SUBJECT);
    let body = message.body_text(0).unwrap_or_default();
    // What is kept is cut at MAX_BODY; looking further for where the history starts would
    // only cost time.
    let body = prefix(&body, MAX_BODY * 2);
    let text = limit(&clean_text(&trim_quoted(body)), MAX_BODY);

    let header = |name: &str| message.header_raw(name).map(|v| v.trim().to_lowercase());
    let content_type = header("Content-Type").unwrap_or_default();
    let is_report = content_type.starts_with("multipart/report");
    let automatic = automatic_reason(&Signals {
        from: &from_address,
        auto_submitted: header("Auto-Submitted").as_deref(),
        precedence: header("Precedence").as_deref(),
        suppress_header: header("X-Auto-Response-Suppress").is_some(),
        autoreply_header: header("X-Autoreply").is_some() || header("X-Autorespond").is_some(),
        null_return_path: header("Return-Path").is_some_and(|r| r.trim() == "<>"),
        our_loop: message
            .header_values("X-Loop")
            .filter_map(|v| v.as_text())
            .any(|v| v.trim().eq_ignore_ascii_case(own_address)),
        is_report,
        list: header("List-Id").is_some(),
    });
    let report = is_report.then(|| {
        unique(
            message
                .parts
                .iter()
                .filter(|p| p.is_content_type("message", "delivery-status"))
                .flat_map(|p| failed_recipients(&String::from_utf8_lossy(p.contents())))
                .collect(),
        )
    });
    let authentication = message
        .headers_raw()
        .filter(|(name, _)| name.eq_ignore_ascii_case("Authentication-Results"))
        .filter_map(|(_, value)| AuthenticationResults::parse(value))
        .collect();
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
        report,
        authentication,
    })
}

/// The mail addresses of address headers, lower-cased, at most [`MAX_RECIPIENTS`].
fn addresses(list: &mut dyn Iterator<Item = &mail_parser::Address>) -> Vec<String> {
    list.flat_map(|a| a.iter())
        .filter_map(|a| a.address())
        .map(|a| a.trim().to_lowercase())
        .filter(|a| is_address(a))
        .take(MAX_RECIPIENTS)
        .collect()
}

/// Each once, in the order first written (a set alongside: linear, not quadratic).
fn unique(items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    items
        .into_iter()
        .filter(|i| seen.insert(i.clone()))
        .collect()
}

/// The first `max` characters of `text`.
fn prefix(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
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

/// One line of at most `max` characters: control characters become spaces, characters that
/// would disguise it (bidirectional overrides, invisible ones) are dropped, runs of white
/// space become one.
fn clean_line(s: &str, max: usize) -> String {
    let line: String = s
        .chars()
        .filter(|c| !text::is_deceptive(*c))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
    line.chars().take(max).collect()
}

/// Text as a comment may hold it: line breaks and tabs, no other control characters (a form
/// feed or an escape in a customer's mail is dropped, not a reason to refuse it).
fn clean_text(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect()
}

fn limit(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}\n\n[… the rest of this message was cut]", &text[..end]),
        None => text.to_owned(),
    }
}

/// What a message's headers say about where it came from, for [`automatic_reason`].
#[derive(Debug, Default)]
pub struct Signals<'a> {
    pub from: &'a str,
    pub auto_submitted: Option<&'a str>,
    pub precedence: Option<&'a str>,
    pub suppress_header: bool,
    /// `X-Autoreply` or `X-Autorespond`.
    pub autoreply_header: bool,
    /// `Return-Path: <>`: sent with no return path, as automatic mail is.
    pub null_return_path: bool,
    pub our_loop: bool,
    pub is_report: bool,
    pub list: bool,
}

/// RFC 3834 and common practice: why a message is automatic (and must get no automatic
/// answer, nor make a ticket), if it is.
pub fn automatic_reason(s: &Signals) -> Option<String> {
    let local = s.from.split('@').next().unwrap_or_default();
    if s.is_report {
        return Some("delivery report (bounce)".into());
    }
    if s.our_loop {
        return Some("X-Loop: sent by Docket itself".into());
    }
    if let Some(v) = s
        .auto_submitted
        .map(|v| v.split(';').next().unwrap_or_default().trim())
        && v != "no"
    {
        return Some(format!("Auto-Submitted: {v}"));
    }
    if let Some(p) = s.precedence
        && ["bulk", "junk", "list", "auto_reply"].contains(&p)
    {
        return Some(format!("Precedence: {p}"));
    }
    if s.suppress_header {
        return Some("X-Auto-Response-Suppress".into());
    }
    if s.autoreply_header {
        return Some("X-Autoreply / X-Autorespond".into());
    }
    if s.null_return_path {
        return Some("Return-Path: <> (no return path)".into());
    }
    if ["mailer-daemon", "postmaster"].contains(&local) {
        return Some(format!("sender {local}"));
    }
    if s.list {
        return Some("mailing list (List-Id)".into());
    }
    None
}

/// The recipients a `message/delivery-status` part (RFC 3464) says failed: each per-recipient
/// block's `Final-Recipient: rfc822; a@b` (or `Original-Recipient`) with `Action: failed`.
fn failed_recipients(status: &str) -> Vec<String> {
    let mut found = Vec::new();
    for block in status.replace("\r\n", "\n").split("\n\n") {
        let field = |name: &str| {
            block.lines().find_map(|line| {
                let (n, v) = line.split_once(':')?;
                n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
            })
        };
        let failed = field("Action").is_some_and(|a| a.eq_ignore_ascii_case("failed"));
        let recipient = field("Final-Recipient").or_else(|| field("Original-Recipient"));
        if let (true, Some(value)) = (failed, recipient) {
            let address = value
                .rsplit(';')
                .next()
                .unwrap_or(value)
                .trim()
                .trim_matches(['<', '>'])
                .to_lowercase();
            if is_address(&address) {
                found.push(address);
            }
        }
    }
    found
}

/// The new part of a reply: everything above the first line that starts quoted history
/// (`On … wrote:`, `-----Original Message-----`, a `From:` block, a run of `>` lines, or
/// Docket's own separator), with trailing blank lines dropped. A message that is nothing
/// but a quote keeps its text. One pass down and one up: linear in the length of the body.
pub fn trim_quoted(body: &str) -> String {
    let body = body.replace("\r\n", "\n");
    let lines: Vec<&str> = body.lines().collect();
    // `quoted_run[i]`: line i and every line after it up to the next blank one are quoted
    // (a blank line ends a run; past the end counts as one).
    let mut quoted_run = vec![true; lines.len() + 1];
    for i in (0..lines.len()).rev() {
        let t = lines[i].trim();
        quoted_run[i] = t.is_empty() || (t.starts_with('>') && quoted_run[i + 1]);
    }
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
        let quoted = t.starts_with('>') && quoted_run[i];
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
        assert_eq!(m.recipients, vec!["help@acme.test", "bob@example.com"]);
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
        let reason = |s: Signals| automatic_reason(&s);
        let plain = || Signals {
            from: "a@b",
            ..Signals::default()
        };
        assert_eq!(reason(plain()), None);
        assert_eq!(
            reason(Signals {
                auto_submitted: Some("no"),
                ..plain()
            }),
            None
        );
        for automatic in [
            Signals {
                auto_submitted: Some("auto-replied"),
                ..plain()
            },
            Signals {
                precedence: Some("bulk"),
                ..plain()
            },
            Signals {
                precedence: Some("junk"),
                ..plain()
            },
            Signals {
                precedence: Some("auto_reply"),
                ..plain()
            },
            Signals {
                suppress_header: true,
                ..plain()
            },
            Signals {
                autoreply_header: true,
                ..plain()
            },
            Signals {
                null_return_path: true,
                ..plain()
            },
            Signals {
                our_loop: true,
                ..plain()
            },
            Signals {
                is_report: true,
                ..plain()
            },
            Signals {
                list: true,
                ..plain()
            },
            Signals {
                from: "mailer-daemon@b",
                ..plain()
            },
            Signals {
                from: "postmaster@b",
                ..plain()
            },
        ] {
            let case = format!("{automatic:?}");
            assert!(reason(automatic).is_some(), "{case}");
        }
        // The same signals as headers.
        for header in [
            "X-Autoreply: yes",
            "X-Autorespond: yes",
            "Precedence: auto_reply",
            "Return-Path: <>",
        ] {
            let raw = format!("From: a@b.c\r\n{header}\r\nSubject: Away\r\n\r\nOut of office\r\n");
            let m = parse(raw.as_bytes(), "help@acme.test").unwrap();
            assert!(m.automatic.is_some(), "{header}");
        }
    }

    #[test]
    fn authentication_results_are_read_and_only_a_trusted_topmost_one_counts() {
        let r = AuthenticationResults::parse(
            "mx.acme.test 1; spf=pass smtp.mailfrom=ann@example.com; dkim=pass (good signature) header.d=Example.com header.s=s1; dmarc=pass (p=none) header.from=example.com",
        )
        .unwrap();
        assert_eq!(r.authserv_id, "mx.acme.test");
        assert_eq!(r.dkim_pass, vec!["example.com"]);
        assert_eq!(r.dmarc_pass, vec!["example.com"]);
        assert!(r.vouches_for("example.com"));
        assert!(r.vouches_for("mail.example.com"), "DKIM: relaxed alignment");
        assert!(!r.vouches_for("evil.test"));
        assert!(!r.vouches_for("notexample.com"));
        let failed = AuthenticationResults::parse(
            "mx.acme.test; dkim=fail header.d=example.com; dmarc=fail header.from=example.com",
        )
        .unwrap();
        assert!(!failed.vouches_for("example.com"));
        assert_eq!(AuthenticationResults::parse("  ; dmarc=pass"), None);
        // A DKIM pass for a top-level domain aligns with nothing.
        let tld = AuthenticationResults::parse("mx; dkim=pass header.d=com").unwrap();
        assert!(!tld.vouches_for("example.com"));

        let message = |headers: &str| {
            let raw =
                format!("{headers}From: Ann <ann@example.com>\r\nSubject: Hi\r\n\r\nText\r\n");
            parse(raw.as_bytes(), "help@acme.test").unwrap()
        };
        let trusted = vec!["mx.acme.test".to_owned()];
        let genuine =
            message("Authentication-Results: mx.acme.test; dmarc=pass header.from=example.com\r\n");
        assert!(genuine.authenticated(&trusted));
        assert!(!genuine.authenticated(&[]), "nothing is trusted by default");
        assert!(!genuine.authenticated(&["other.test".to_owned()]));
        // The sender's own forged header sits below the one the trusted system added.
        let forged = message(
            "Authentication-Results: mx.acme.test; dmarc=fail header.from=example.com\r\nAuthentication-Results: mx.acme.test; dmarc=pass header.from=example.com\r\n",
        );
        assert!(!forged.authenticated(&trusted));
        let other_domain =
            message("Authentication-Results: mx.acme.test; dkim=pass header.d=evil.test\r\n");
        assert!(!other_domain.authenticated(&trusted));
    }

    #[test]
    fn subjects_and_bodies_are_cleaned_not_refused() {
        let raw = format!(
            "From: a@b.c\r\nSubject: {}\u{200f}\u{202e}reversed\r\n\r\nform\u{c}feed and \u{1b}[31mescape\r\n\ttab\r\n",
            "x".repeat(300)
        );
        let m = parse(raw.as_bytes(), "help@acme.test").unwrap();
        assert_eq!(m.subject.chars().count(), MAX_SUBJECT);
        let short = "From: a@b.c\r\nSubject: \u{5e9}\u{5dc}\u{5d5}\u{5dd}\u{200f} \u{202e}x\r\n\r\nbody\r\n";
        let m = parse(short.as_bytes(), "help@acme.test").unwrap();
        assert_eq!(
            m.subject, "\u{5e9}\u{5dc}\u{5d5}\u{5dd}\u{200f} x",
            "marks stay, overrides go"
        );
        let m = parse(raw.as_bytes(), "help@acme.test").unwrap();
        assert_eq!(m.text, "formfeed and [31mescape\n\ttab");
    }

    #[test]
    fn trimming_is_linear() {
        // N quoted lines then one plain line: the report's 80 KB mail took 4.8 s.
        let body = format!("{}plain\n", "> q\n".repeat(200_000));
        let started = std::time::Instant::now();
        let kept = trim_quoted(&body);
        assert!(kept.ends_with("plain"));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
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
    fn bounces_name_their_failed_recipients_from_the_status_part_only() {
        let report = "From: MAILER-DAEMON@mx.test\r\nTo: help@acme.test\r\nSubject: Undelivered\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nFinal-Recipient: rfc822; victim@example.com\r\nAction: failed\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.test\r\n\r\nFinal-Recipient: rfc822; Gone@Example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\nFinal-Recipient: rfc822; delayed@example.com\r\nAction: delayed\r\nStatus: 4.0.0\r\n--b--\r\n";
        let m = parse(report.as_bytes(), "help@acme.test").unwrap();
        assert_eq!(m.automatic.as_deref(), Some("delivery report (bounce)"));
        assert_eq!(m.report, Some(vec!["gone@example.com".to_owned()]));
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
