//! Mail templates: `templates/<kind>.subject`, `.txt` and `.html` beside this file, compiled in.
//! HTML templates escape every value; subjects and text do not need to.

use std::sync::LazyLock;

use minijinja::{AutoEscape, Environment};
use serde_json::Value;

use super::Kind;
use crate::error::{Error, Result};

macro_rules! templates {
    ($($kind:literal),*) => {
        &[$(
            (concat!($kind, ".subject"), include_str!(concat!("templates/", $kind, ".subject"))),
            (concat!($kind, ".txt"), include_str!(concat!("templates/", $kind, ".txt"))),
            (concat!($kind, ".html"), include_str!(concat!("templates/", $kind, ".html"))),
        )*]
    };
}

const SOURCES: &[(&str, &str)] = templates!(
    "invitation",
    "password_reset",
    "notification",
    "digest",
    "ticket_reply",
    "acknowledgement",
    "signup_confirmation",
    "contact_link",
    "organization_deletion",
    "export_ready",
    "payment_failed"
);

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_keep_trailing_newline(true);
    for (name, source) in SOURCES {
        env.add_template(name, source)
            .unwrap_or_else(|err| panic!("mail template {name}: {err}"));
    }
    env
});

fn render(name: &str, params: &Value) -> Result<String> {
    ENV.get_template(name)
        .and_then(|t| t.render(params))
        .map_err(|err| Error::internal(anyhow::anyhow!("rendering mail template {name}: {err}")))
}

/// The subject line: one line, whatever the values hold.
pub(super) fn subject(kind: Kind, params: &Value) -> Result<String> {
    let line = render(&format!("{}.subject", kind.as_str()), params)?;
    Ok(line.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The plain text and HTML bodies.
pub(super) fn bodies(kind: Kind, params: &Value) -> Result<(String, String)> {
    Ok((
        render(&format!("{}.txt", kind.as_str()), params)?,
        render(&format!("{}.html", kind.as_str()), params)?,
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_template_renders_and_html_escapes_values() {
        let params = json!({
            "public_url": "https://docket.example",
            "link": "https://docket.example/x?a=1&b=2",
            "organization": "Acme <script>",
            "inviter": "Ann",
            "role": "agent",
            "name": "Bob",
            "key": "OPS-1",
            "title": "Printer <b>on fire</b>",
            "body": "Hello\nthere",
            "author": "Ann",
            "items": [{"title": "A <i>", "body": "b", "link": "https://x/1"}],
            "unsubscribe": "https://docket.example/account",
            "organizations": ["Acme <script>", "Beta"],
            "path": "/x",
            "purge_at": "2026-12-21 10:00 UTC",
            "scope": "organization",
            "expires_at": "2026-12-14 10:00 UTC",
        });
        for kind in Kind::ALL {
            let subject = subject(kind, &params).unwrap();
            assert!(!subject.contains('\n'), "{kind:?}");
            let (text, html) = bodies(kind, &params).unwrap();
            assert!(!text.is_empty(), "{kind:?}");
            assert!(!html.contains("<script>"), "{kind:?}: {html}");
            assert!(!html.contains("<b>on fire"), "{kind:?}: {html}");
        }
    }
}
