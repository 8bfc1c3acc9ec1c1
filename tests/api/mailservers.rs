//! Real mail servers for the mail tests, each a private process on loopback: an SMTP server
//! (aiosmtpd from PyPI, storing what it receives in a maildir) and an IMAP server (Debian's
//! Dovecot, with one mailbox). `scripts/test` installs both; each test starts its own.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use crate::helpers::{free_port, wait_listening};

/// One message the SMTP server received.
#[derive(Clone, Debug)]
pub struct Received {
    pub raw: String,
}

impl Received {
    fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(self.raw.as_bytes())
            .expect("a parseable mail")
    }

    /// The envelope sender (aiosmtpd's `X-MailFrom`): where a delivery report would go.
    pub fn return_path(&self) -> String {
        self.header("X-MailFrom").unwrap_or_default()
    }

    /// The envelope recipient (aiosmtpd's `X-RcptTo`).
    pub fn to(&self) -> String {
        self.header("X-RcptTo").unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.parsed().header_raw(name).map(|v| v.trim().to_owned())
    }

    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_owned()
    }

    pub fn text(&self) -> String {
        self.parsed()
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default()
    }

    pub fn html(&self) -> String {
        self.parsed()
            .body_html(0)
            .map(|t| t.into_owned())
            .unwrap_or_default()
    }

    /// Whether the text has a link under `prefix`.
    pub fn has_link(&self, prefix: &str) -> bool {
        self.text().contains(prefix)
    }

    /// The first link in the text under `prefix`.
    pub fn link(&self, prefix: &str) -> String {
        let text = self.text();
        let at = text
            .find(prefix)
            .unwrap_or_else(|| panic!("no {prefix} link in {text}"));
        text[at..].split_whitespace().next().unwrap().to_owned()
    }
}

pub struct Smtp {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// A port nothing listens on (yet).
pub fn closed_port() -> u16 {
    free_port()
}

impl Smtp {
    pub async fn start() -> Smtp {
        Smtp::start_on(free_port()).await
    }

    pub async fn start_on(port: u16) -> Smtp {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("maildir"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd (pip install aiosmtpd)");
        wait_listening(port, "aiosmtpd", &mut child).await;
        Smtp { child, port, dir }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Everything received so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        let mut files: Vec<PathBuf> = ["new", "cur"]
            .iter()
            .filter_map(|d| std::fs::read_dir(self.dir.path().join("maildir").join(d)).ok())
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort_by_key(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok());
        files
            .into_iter()
            .map(|f| Received {
                raw: String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned(),
            })
            .collect()
    }

    /// Forgets what was received so far.
    pub fn clear(&self) {
        for d in ["new", "cur"] {
            let _ = std::fs::remove_dir_all(self.dir.path().join("maildir").join(d));
            let _ = std::fs::create_dir_all(self.dir.path().join("maildir").join(d));
        }
    }

    /// What went to `address`.
    pub fn to(&self, address: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|m| m.to().contains(address))
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Imap {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    delivered: usize,
}

pub const IMAP_USER: &str = "helpdesk";
pub const IMAP_PASSWORD: &str = "imap-secret-password";

fn open_up(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
}

impl Imap {
    pub async fn start() -> Imap {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in [
            "run",
            "state",
            "home",
            "mail",
            "mail/helpdesk",
            "mail/helpdesk/new",
            "mail/helpdesk/cur",
            "mail/helpdesk/tmp",
        ] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
            open_up(&d.join(sub));
        }
        open_up(d);
        let port = free_port();
        let conf = format!(
            "protocols = imap\nlisten = 127.0.0.1\nssl = no\nbase_dir = {d}/run\nstate_dir = {d}/state\n\
             log_path = {d}/dovecot.log\ndisable_plaintext_auth = no\nauth_mechanisms = plain login\n\
             mail_location = maildir:{d}/mail/%u\nfirst_valid_uid = 100\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/users\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = username_format=%u {d}/users\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n",
            d = d.display()
        );
        std::fs::write(d.join("dovecot.conf"), conf).unwrap();
        std::fs::write(
            d.join("users"),
            format!(
                "{IMAP_USER}:{{PLAIN}}{IMAP_PASSWORD}:65534:65534::{}/home::\n",
                d.display()
            ),
        )
        .unwrap();
        let mut child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dovecot (apt-get install dovecot-imapd)");
        wait_listening(port, "dovecot", &mut child).await;
        Imap {
            child,
            port,
            dir,
            delivered: 0,
        }
    }

    /// Puts a message into the mailbox, as a delivery agent would.
    pub fn deliver(&mut self, raw: &str) {
        self.delivered += 1;
        let maildir = self.dir.path().join("mail").join(IMAP_USER);
        let name = format!(
            "{}.M{}P1.docket-test",
            1_700_000_000 + self.delivered,
            self.delivered
        );
        let tmp = maildir.join("tmp").join(&name);
        std::fs::write(&tmp, raw.replace('\n', "\r\n").replace("\r\r\n", "\r\n")).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
        std::fs::rename(&tmp, maildir.join("new").join(&name)).unwrap();
    }
}

impl Drop for Imap {
    fn drop(&mut self) {
        // SIGTERM, so the master stops its helper processes too.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}
