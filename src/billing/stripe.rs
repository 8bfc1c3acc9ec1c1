//! Stripe's HTTP API, as far as Docket calls it: a customer per organisation, a Checkout Session
//! to subscribe, a Billing Portal session to change or cancel. Form-encoded requests with the
//! secret key as bearer, the API version pinned (the shapes below are that version's), and an
//! `Idempotency-Key` on every POST so a retried call never makes a second object.

use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use crate::{
    config::{BillingConfig, Secret},
    error::{Error, Result},
};

/// The API version every request names (`Stripe-Version`).
pub const API_VERSION: &str = "2024-06-20";
const TIMEOUT: Duration = Duration::from_secs(20);

/// A client of Stripe's API.
#[derive(Clone)]
pub struct Stripe {
    http: reqwest::Client,
    base: String,
    key: Secret,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe").field("base", &self.base).finish()
    }
}

/// A Checkout Session to open: the price to subscribe the organisation to, and where Stripe
/// sends the browser back.
pub struct CheckoutRequest<'a> {
    pub org_id: Uuid,
    pub customer: &'a str,
    pub price: &'a str,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
}

impl Stripe {
    /// The client of `cfg`, when it names a secret key.
    pub fn configured(cfg: &BillingConfig) -> anyhow::Result<Option<Self>> {
        let Some(key) = cfg.stripe_secret_key.clone() else {
            return Ok(None);
        };
        let base = cfg.stripe_api_base.trim().trim_end_matches('/').to_owned();
        url::Url::parse(&base)
            .map_err(|err| anyhow::anyhow!("DOCKET_STRIPE_API_BASE {base:?}: {err}"))?;
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Some(Self { http, base, key }))
    }

    /// Creates the organisation's customer; the key makes a repeated call (two owners at once,
    /// a retry) answer the same one.
    pub async fn create_customer(&self, org_id: Uuid, name: &str, email: &str) -> Result<String> {
        let form = [
            ("name", name.to_owned()),
            ("email", email.to_owned()),
            ("metadata[docket_org_id]", org_id.to_string()),
        ];
        let customer = self
            .post("/v1/customers", &form, &format!("docket-customer-{org_id}"))
            .await?;
        field(&customer, "id")
    }

    /// Opens a Checkout Session in subscription mode; answers its URL. The subscription it makes
    /// carries the organisation in `metadata.docket_org_id`.
    pub async fn create_checkout_session(&self, req: CheckoutRequest<'_>) -> Result<String> {
        let org = req.org_id.to_string();
        let form = [
            ("mode", "subscription".to_owned()),
            ("customer", req.customer.to_owned()),
            ("line_items[0][price]", req.price.to_owned()),
            ("line_items[0][quantity]", "1".to_owned()),
            ("success_url", req.success_url.to_owned()),
            ("cancel_url", req.cancel_url.to_owned()),
            ("client_reference_id", org.clone()),
            ("metadata[docket_org_id]", org.clone()),
            ("subscription_data[metadata][docket_org_id]", org),
        ];
        let session = self
            .post("/v1/checkout/sessions", &form, &Uuid::new_v4().to_string())
            .await?;
        field(&session, "url")
    }

    /// Opens a Billing Portal session for `customer`; answers its URL.
    pub async fn create_portal_session(&self, customer: &str, return_url: &str) -> Result<String> {
        let form = [
            ("customer", customer.to_owned()),
            ("return_url", return_url.to_owned()),
        ];
        let session = self
            .post(
                "/v1/billing_portal/sessions",
                &form,
                &Uuid::new_v4().to_string(),
            )
            .await?;
        field(&session, "url")
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: &str,
    ) -> Result<Value> {
        let answer = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.key.expose())
            .header("Stripe-Version", API_VERSION)
            .header("Idempotency-Key", idempotency_key)
            .form(form)
            .send()
            .await
            .map_err(|err| {
                tracing::warn!(%path, error = %err, "Stripe did not answer");
                unreachable_provider()
            })?;
        let status = answer.status();
        let body = answer.bytes().await.map_err(|_| unreachable_provider())?;
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let message = value
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        tracing::warn!(%path, %status, %message, "Stripe refused a request");
        Err(Error::BadGateway {
            code: "payment_provider_error",
            detail: format!("the payment provider refused the request: {message}"),
        })
    }
}

fn unreachable_provider() -> Error {
    Error::BadGateway {
        code: "payment_provider_unreachable",
        detail: "the payment provider did not answer; try again in a moment".into(),
    }
}

/// A string field of Stripe's answer.
fn field(object: &Value, name: &str) -> Result<String> {
    object
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Error::BadGateway {
            code: "payment_provider_error",
            detail: format!("the payment provider's answer has no {name}"),
        })
}
