//! Stripe's webhook signature (`Stripe-Signature: t=…,v1=…`), checked on the raw body before
//! anything reads it: an HMAC-SHA256 of `"{t}.{body}"` under the endpoint's signing secret,
//! compared in constant time, within a tolerance of the signing time. While a secret is rolled,
//! Stripe signs with both (several `v1` values) and Docket may hold both (several secrets): any
//! pair that matches will do. Other schemes (`v0`, test-mode leftovers) are ignored.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far the signing time may be from now, either way (Stripe's libraries use 300 s).
pub const TOLERANCE_SECS: i64 = 300;

/// Why a signature was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// No header, or one without a timestamp or any `v1` signature.
    Malformed,
    /// Signed too long ago (or too far ahead): a replay, or a clock far off.
    OutsideTolerance,
    /// No signature matches the body under any secret.
    Mismatch,
}

impl Refused {
    pub fn explain(&self) -> &'static str {
        match self {
            Refused::Malformed => {
                "the Stripe-Signature header is missing or has no timestamp and v1 signature"
            }
            Refused::OutsideTolerance => {
                "the Stripe-Signature timestamp is more than 5 minutes from now"
            }
            Refused::Mismatch => "the Stripe-Signature does not match the body",
        }
    }
}

/// Checks `header` against `body` under any of `secrets`, at `now` (Unix seconds).
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[&str],
    now: i64,
) -> Result<(), Refused> {
    let (timestamp, signatures) = parse(header.ok_or(Refused::Malformed)?)?;
    if (now - timestamp).abs() > TOLERANCE_SECS {
        return Err(Refused::OutsideTolerance);
    }
    for secret in secrets {
        let expected = sign(secret, timestamp, body);
        if signatures
            .iter()
            .any(|candidate| bool::from(candidate.as_slice().ct_eq(&expected)))
        {
            return Ok(());
        }
    }
    Err(Refused::Mismatch)
}

/// The `v1` signature of `body` signed at `timestamp` under `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// The timestamp and the `v1` signatures (decoded) of a header.
fn parse(header: &str) -> Result<(i64, Vec<Vec<u8>>), Refused> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for pair in header.split(',') {
        let Some((key, value)) = pair.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" => timestamp = value.parse::<i64>().ok(),
            "v1" => {
                if let Ok(bytes) = hex::decode(value) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    match timestamp {
        Some(t) if !signatures.is_empty() => Ok((t, signatures)),
        _ => Err(Refused::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_765_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;

    fn header(secret: &str, t: i64, body: &[u8]) -> String {
        format!("t={t},v1={}", hex::encode(sign(secret, t, body)))
    }

    #[test]
    fn a_signature_by_the_secret_within_tolerance_passes() {
        let h = header("whsec_a", NOW - 10, BODY);
        assert_eq!(verify(Some(&h), BODY, &["whsec_a"], NOW), Ok(()));
        let ahead = header("whsec_a", NOW + TOLERANCE_SECS, BODY);
        assert_eq!(verify(Some(&ahead), BODY, &["whsec_a"], NOW), Ok(()));
    }

    #[test]
    fn a_wrong_secret_is_refused() {
        let h = header("whsec_other", NOW, BODY);
        assert_eq!(
            verify(Some(&h), BODY, &["whsec_a"], NOW),
            Err(Refused::Mismatch)
        );
    }

    #[test]
    fn an_old_or_future_timestamp_is_refused() {
        let old = header("whsec_a", NOW - TOLERANCE_SECS - 1, BODY);
        assert_eq!(
            verify(Some(&old), BODY, &["whsec_a"], NOW),
            Err(Refused::OutsideTolerance)
        );
        let future = header("whsec_a", NOW + TOLERANCE_SECS + 1, BODY);
        assert_eq!(
            verify(Some(&future), BODY, &["whsec_a"], NOW),
            Err(Refused::OutsideTolerance)
        );
    }

    #[test]
    fn a_tampered_body_or_timestamp_is_refused() {
        let h = header("whsec_a", NOW, BODY);
        let tampered = br#"{"id":"evt_1","type":"invoice.paid" }"#;
        assert_eq!(
            verify(Some(&h), tampered, &["whsec_a"], NOW),
            Err(Refused::Mismatch)
        );
        let moved = h.replace(&format!("t={NOW}"), &format!("t={}", NOW - 1));
        assert_eq!(
            verify(Some(&moved), BODY, &["whsec_a"], NOW),
            Err(Refused::Mismatch)
        );
    }

    #[test]
    fn during_rotation_any_v1_under_any_secret_passes() {
        let new = hex::encode(sign("whsec_new", NOW, BODY));
        let old = hex::encode(sign("whsec_old", NOW, BODY));
        let both = format!("t={NOW},v1={new},v1={old}");
        assert_eq!(verify(Some(&both), BODY, &["whsec_old"], NOW), Ok(()));
        assert_eq!(verify(Some(&both), BODY, &["whsec_new"], NOW), Ok(()));
        let only_new = format!("t={NOW},v1={new}");
        assert_eq!(
            verify(Some(&only_new), BODY, &["whsec_old", "whsec_new"], NOW),
            Ok(())
        );
    }

    #[test]
    fn a_v0_signature_never_counts() {
        let v0 = format!("t={NOW},v0={}", hex::encode(sign("whsec_a", NOW, BODY)));
        assert_eq!(
            verify(Some(&v0), BODY, &["whsec_a"], NOW),
            Err(Refused::Malformed)
        );
    }

    #[test]
    fn malformed_headers_are_refused_as_such() {
        for h in ["", "t=", "v1=abcd", "t=abc,v1=00", "garbage", "t=1,v1=zz"] {
            assert_eq!(
                verify(Some(h), BODY, &["whsec_a"], NOW),
                Err(Refused::Malformed),
                "{h}"
            );
        }
        assert_eq!(
            verify(None, BODY, &["whsec_a"], NOW),
            Err(Refused::Malformed)
        );
    }
}
