//! Keys derived from the server's signing secret: one signs the ticket references Docket puts
//! in its message ids and reply addresses (so a reply finds its ticket and a forged one does
//! not), one encrypts stored mailbox passwords.

use hmac::{Hmac, Mac, digest::KeyInit as KeyInitMac};
use sha2::Sha256;
use uuid::Uuid;

use crate::{
    config::Secret,
    vault::{self, Vault},
};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of HMAC a reference carries (truncated: 80 bits is plenty against guessing, and keeps
/// the local part of a reply address short).
const TAG: usize = 10;

#[derive(Clone)]
pub struct MailKeys {
    reference: [u8; 32],
    /// Stored mailbox passwords.
    pub vault: Vault,
}

impl std::fmt::Debug for MailKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MailKeys(***)")
    }
}

impl MailKeys {
    pub fn new(signing_secret: &Secret) -> Self {
        Self {
            reference: vault::derive(signing_secret, "docket mail: ticket references"),
            vault: Vault::new(signing_secret, "docket mail: stored mailbox passwords"),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac =
            <HmacSha256 as KeyInitMac>::new_from_slice(&self.reference).expect("any key length");
        for part in parts {
            mac.update(&(part.len() as u32).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    fn tag(&self, parts: &[&[u8]]) -> Vec<u8> {
        self.mac(parts).finalize().into_bytes()[..TAG].to_vec()
    }

    /// `t<ticket>-<tag>`: names a ticket of an organisation, unforgeably. Lower-case hex only,
    /// so it survives mail systems that fold the case of addresses.
    pub fn ticket_reference(&self, org_id: Uuid, ticket_id: Uuid) -> String {
        let tag = self.tag(&[b"ticket", org_id.as_bytes(), ticket_id.as_bytes()]);
        format!("t{}-{}", ticket_id.simple(), hex::encode(tag))
    }

    /// The ticket a reference names, when it was signed for this organisation.
    pub fn verify_ticket_reference(&self, org_id: Uuid, reference: &str) -> Option<Uuid> {
        let (ticket, tag) = reference.strip_prefix('t')?.split_once('-')?;
        let ticket_id = Uuid::try_parse(ticket).ok()?;
        let given = hex::decode(tag).ok().filter(|t| t.len() == TAG)?;
        // Compared in constant time.
        self.mac(&[b"ticket", org_id.as_bytes(), ticket_id.as_bytes()])
            .verify_truncated_left(&given)
            .ok()?;
        Some(ticket_id)
    }

    /// `b<mail>-<tag>`: the return path's part of a mail Docket sends, so that a delivery report
    /// about it can be told from a forged one.
    pub fn return_path_reference(&self, org_id: Uuid, mail_id: Uuid) -> String {
        let tag = self.tag(&[b"return path", org_id.as_bytes(), mail_id.as_bytes()]);
        format!("b{}-{}", mail_id.simple(), hex::encode(tag))
    }

    /// The mail a return path (`local+b<mail>-<tag>@domain`) names, when it was signed for
    /// this organisation.
    pub fn verify_return_path(&self, org_id: Uuid, address: &str) -> Option<Uuid> {
        let local = address.rsplit_once('@')?.0;
        let (mail, tag) = local
            .split_once('+')?
            .1
            .strip_prefix('b')?
            .split_once('-')?;
        let mail_id = Uuid::try_parse(mail).ok()?;
        let given = hex::decode(tag).ok().filter(|t| t.len() == TAG)?;
        self.mac(&[b"return path", org_id.as_bytes(), mail_id.as_bytes()])
            .verify_truncated_left(&given)
            .ok()?;
        Some(mail_id)
    }

    /// The path secret of an organisation's inbound address: its id and a tag over the id and
    /// a generation (bumped to rotate the address).
    pub fn inbound_token(&self, org_id: Uuid, generation: i32) -> String {
        let tag = self.tag(&[b"inbound", org_id.as_bytes(), &generation.to_be_bytes()]);
        format!("{}{}", org_id.simple(), hex::encode(tag))
    }

    /// The organisation an inbound token claims to be for (check it with
    /// [`MailKeys::inbound_token`] against the stored generation).
    pub fn inbound_token_org(token: &str) -> Option<Uuid> {
        if token.len() != 32 + TAG * 2 || !token.is_ascii() {
            return None;
        }
        Uuid::try_parse(&token[..32]).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> MailKeys {
        MailKeys::new(&Secret::new(secret))
    }

    #[test]
    fn ticket_references_verify_only_for_their_organisation_and_key() {
        let k = keys("a-signing-secret-of-enough-length-000");
        let (org, other, ticket) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let r = k.ticket_reference(org, ticket);
        assert_eq!(k.verify_ticket_reference(org, &r), Some(ticket));
        assert_eq!(k.verify_ticket_reference(other, &r), None);
        assert_eq!(
            keys("another-signing-secret-of-length-0000").verify_ticket_reference(org, &r),
            None
        );
        let mut forged = r.clone();
        forged.pop();
        forged.push(if r.ends_with('0') { '1' } else { '0' });
        assert_eq!(k.verify_ticket_reference(org, &forged), None);
        for junk in ["", "t", "t-", "tzz-00", "x"] {
            assert_eq!(k.verify_ticket_reference(org, junk), None);
        }
    }

    #[test]
    fn return_paths_verify_only_for_their_organisation() {
        let k = keys("a-signing-secret-of-enough-length-000");
        let (org, other, mail) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let address = format!("help+{}@docket.test", k.return_path_reference(org, mail));
        assert_eq!(k.verify_return_path(org, &address), Some(mail));
        assert_eq!(k.verify_return_path(other, &address), None);
        // A ticket reference is not a return path, nor is a plain address.
        let ticket = format!("help+{}@docket.test", k.ticket_reference(org, mail));
        assert_eq!(k.verify_return_path(org, &ticket), None);
        for junk in ["help@docket.test", "help+b@x", "help+bzz-00@x", "", "@"] {
            assert_eq!(k.verify_return_path(org, junk), None, "{junk}");
        }
    }

    #[test]
    fn inbound_tokens_name_their_organisation_and_change_with_the_generation() {
        let k = keys("a-signing-secret-of-enough-length-000");
        let org = Uuid::now_v7();
        let t0 = k.inbound_token(org, 0);
        assert_eq!(MailKeys::inbound_token_org(&t0), Some(org));
        assert_ne!(t0, k.inbound_token(org, 1));
        assert_eq!(MailKeys::inbound_token_org("short"), None);
    }
}
