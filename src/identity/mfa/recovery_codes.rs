//! Recovery codes: ten single-use codes for when the app or passkey is lost, shown once and
//! stored as SHA-256 hashes (50 random bits each, and the second step is throttled, so a fast
//! hash is enough).

use chrono::Utc;
use rand::Rng;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::Expr,
};
use uuid::Uuid;

use super::{Proof, SecondFactors, check_proof, status, totp::RecoveryCodes};
use crate::{
    access::TenantCtx,
    error::{Error, Result},
    identity::{Hasher, entity::recovery_code, tokens::link_hash},
    store::Db,
};

const COUNT: usize = 10;
/// Letters and digits nobody confuses (no 0/o, 1/l/i).
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Ten new codes, `xxxxx-xxxxx`.
pub(super) fn fresh() -> Vec<String> {
    let mut rng = rand::rng();
    (0..COUNT)
        .map(|_| {
            let chars: String = (0..10)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect();
            format!("{}-{}", &chars[..5], &chars[5..])
        })
        .collect()
}

/// One spelling of a code: what the person typed, without spaces or dashes, in lower case.
fn normalized(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Replaces the account's codes with `codes` (none: removes them).
pub(super) async fn replace(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    codes: &[String],
) -> Result<()> {
    recovery_code::Entity::delete_many()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .exec(conn)
        .await?;
    if codes.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    recovery_code::Entity::insert_many(codes.iter().map(|c| recovery_code::ActiveModel {
        user_id: Set(user_id),
        code_hash: Set(link_hash(&normalized(c))),
        created_at: Set(now),
        used_at: Set(None),
    }))
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Uses up a code; false when it is not one of the account's unused codes.
pub(super) async fn redeem(db: &Db, user_id: Uuid, code: &str) -> Result<bool> {
    let code = normalized(code);
    if code.is_empty() || code.len() > 64 {
        return Ok(false);
    }
    let tx = db.global(true).await?;
    let used = recovery_code::Entity::update_many()
        .col_expr(recovery_code::Column::UsedAt, Expr::value(Utc::now()))
        .filter(recovery_code::Column::UserId.eq(user_id))
        .filter(recovery_code::Column::CodeHash.eq(link_hash(&code)))
        .filter(recovery_code::Column::UsedAt.is_null())
        .exec(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(used.rows_affected == 1)
}

/// A new set of codes for an account with a second factor; the old ones stop working.
pub async fn regenerate(
    db: &Db,
    hasher: &Hasher,
    factors: &SecondFactors,
    ctx: &TenantCtx,
    proof: Proof,
    ip: std::net::IpAddr,
) -> Result<RecoveryCodes> {
    if !status(db.global(false).await?.conn(), ctx.user_id)
        .await?
        .any()
    {
        return Err(Error::conflict(
            "mfa_not_enrolled",
            "recovery codes stand in for a second factor; enrol one first",
        ));
    }
    check_proof(db, hasher, factors, ctx, &proof, ip).await?;
    let codes = fresh();
    let tx = db.global(true).await?;
    replace(tx.conn(), ctx.user_id, &codes).await?;
    tx.commit().await?;
    super::totp::record(
        db,
        ctx.org_id,
        ctx.user_id,
        "mfa.recovery_codes_regenerated",
    )
    .await?;
    Ok(RecoveryCodes {
        recovery_codes: codes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_ten_distinct_and_typed_forgivingly() {
        let codes = fresh();
        assert_eq!(codes.len(), COUNT);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), COUNT);
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 11 && c.as_bytes()[5] == b'-')
        );
        assert_eq!(normalized(" ABCDE-fghjk "), "abcdefghjk");
        assert_eq!(normalized("abcde fghjk"), "abcdefghjk");
    }
}
