//! Paying for plans through Stripe. The subscription's life runs against `localstripe` (PyPI), a
//! stateful fake Stripe started per test on loopback, which sends its own signed webhooks to the
//! server: a subscription sets the plan, a newer one replaces it, a failed payment opens a grace
//! that ends on the default plan, paying brings the plan back, deletion ends it. localstripe has
//! no Checkout or Billing Portal sessions: those calls are checked against a fixture server that
//! answers as Stripe's API reference documents and records what Docket sent. Signed events made
//! here cover the signature's refusals, replays and events out of order.

use std::{
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::State, http::HeaderMap, routing::post};
use chrono::Utc;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const SECRET_KEY: &str = "sk_test_docket";
const WEBHOOK_SECRET: &str = "whsec_docket_tests";
const WEBHOOK: &str = "/api/v1/billing/stripe/webhook";

/// Plan ids are localstripe's price ids (it has plans, not prices).
const PLANS: &str = r#"
[plans.free]
label = "Free"
seats = 3

[plans.team]
label = "Team"
seats = 25
stripe_price_id = "plan_team"

[plans.business]
label = "Business"
stripe_price_id = "plan_business"
"#;

/// A server with plans (`free` the default) that takes payment through Stripe at `stripe`.
pub(crate) async fn billed(stripe: &str, grace_days: u32) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plans.toml");
    std::fs::write(&path, PLANS).unwrap();
    let stripe = stripe.to_owned();
    let app = spawn_app_tuned(None, move |_, serve| {
        serve.plans.plans_file = Some(path);
        serve.plans.default_plan = Some("free".into());
        serve.billing.stripe_secret_key = Some(docket::config::Secret::new(SECRET_KEY));
        serve.billing.stripe_webhook_secret = Some(docket::config::Secret::new(format!(
            "whsec_retired,{WEBHOOK_SECRET}"
        )));
        serve.billing.stripe_api_base = stripe;
        serve.billing.billing_grace_days = grace_days;
    })
    .await;
    (app, dir)
}

pub(crate) async fn plan_of(app: &TestApp, token: &str) -> Value {
    app.get("/api/v1/org/plan", token)
        .await
        .assert_ok(200)
        .clone()
}

/// Waits (for localstripe's webhooks, sent a second after each change) until the plan of the
/// organisation is `key`.
async fn wait_plan(app: &TestApp, token: &str, key: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let view = plan_of(app, token).await;
        if view["plan"]["key"] == key {
            return view;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "plan still {}",
            view["plan"]["key"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// localstripe on a port of its own; stopped when dropped.
struct LocalStripe {
    base: String,
    http: reqwest::Client,
    child: Child,
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LocalStripe {
    async fn start() -> Self {
        let port = free_port();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/stripe/localstripe_server.py"
        );
        let mut child = Command::new("python3")
            .args([script, "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs localstripe (scripts/test installs it)");
        wait_listening(port, "localstripe", &mut child).await;
        let stripe = Self {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            child,
        };
        for (id, amount) in [("plan_team", "2900"), ("plan_business", "9900")] {
            stripe
                .post(
                    "/v1/plans",
                    &[
                        ("id", id),
                        ("amount", amount),
                        ("currency", "eur"),
                        ("interval", "month"),
                        ("product[name]", id),
                    ],
                )
                .await;
        }
        stripe
    }

    /// Sends its events to `app`'s webhook, signed with the endpoint's secret.
    async fn send_events_to(&self, app: &TestApp) {
        let res = self
            .http
            .post(format!("{}/_config/webhooks/docket", self.base))
            .form(&[
                ("url", format!("{}{WEBHOOK}", app.base)),
                ("secret", WEBHOOK_SECRET.into()),
            ])
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(SECRET_KEY)
            .form(form)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert!(status.is_success(), "localstripe {path}: {status} {body}");
        body
    }

    async fn delete(&self, path: &str) -> Value {
        let res = self
            .http
            .delete(format!("{}{path}", self.base))
            .bearer_auth(SECRET_KEY)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "localstripe DELETE {path}");
        res.json().await.unwrap()
    }

    /// Makes `number` the customer's card for what it pays next.
    async fn use_card(&self, customer: &str, number: &str) {
        let card = self
            .post(
                "/v1/payment_methods",
                &[
                    ("type", "card"),
                    ("card[number]", number),
                    ("card[exp_month]", "12"),
                    ("card[exp_year]", "2035"),
                    ("card[cvc]", "123"),
                ],
            )
            .await;
        let card = card["id"].as_str().unwrap();
        self.post(
            &format!("/v1/payment_methods/{card}/attach"),
            &[("customer", customer)],
        )
        .await;
        self.post(
            &format!("/v1/customers/{customer}"),
            &[("invoice_settings[default_payment_method]", card)],
        )
        .await;
    }

    /// A customer for organisation `org`, paying by a card that works.
    async fn customer(&self, org: &str) -> String {
        let customer = self
            .post(
                "/v1/customers",
                &[
                    ("email", "billing@acme.example"),
                    ("metadata[docket_org_id]", org),
                ],
            )
            .await;
        let customer = customer["id"].as_str().unwrap().to_owned();
        self.use_card(&customer, "4242424242424242").await;
        customer
    }

    /// Subscribes `customer` to `plan`, for organisation `org` as Docket's checkout does.
    async fn subscribe(&self, customer: &str, plan: &str, org: &str) -> String {
        let sub = self
            .post(
                "/v1/subscriptions",
                &[
                    ("customer", customer),
                    ("items[0][plan]", plan),
                    ("metadata[docket_org_id]", org),
                ],
            )
            .await;
        assert_eq!(sub["status"], "active", "{sub}");
        sub["id"].as_str().unwrap().to_owned()
    }

    /// Bills `customer` once more for `subscription`; answers the invoice's id.
    async fn invoice(&self, customer: &str, subscription: &str) -> String {
        self.post(
            "/v1/invoiceitems",
            &[
                ("customer", customer),
                ("amount", "2900"),
                ("currency", "eur"),
            ],
        )
        .await;
        let invoice = self
            .post(
                "/v1/invoices",
                &[("customer", customer), ("subscription", subscription)],
            )
            .await;
        invoice["id"].as_str().unwrap().to_owned()
    }

    /// Tries to pay `invoice` with the customer's card; answers the invoice.
    async fn pay(&self, invoice: &str) -> Value {
        self.post(&format!("/v1/invoices/{invoice}/pay"), &[]).await
    }

    /// The customer declines the card's authentication of the payment of `invoice` (as
    /// `pay` left it): Stripe reports the payment failed.
    async fn decline_authentication(&self, invoice: &Value) {
        let intent = invoice["payment_intent"]
            .as_str()
            .expect("a payment intent");
        let res = self
            .http
            .get(format!("{}/v1/payment_intents/{intent}", self.base))
            .bearer_auth(SECRET_KEY)
            .send()
            .await
            .unwrap();
        let intent: Value = res.json().await.unwrap();
        assert_eq!(intent["status"], "requires_action", "{intent}");
        let id = intent["id"].as_str().unwrap();
        let secret = intent["client_secret"].as_str().unwrap();
        self.post(
            &format!("/v1/payment_intents/{id}/_authenticate"),
            &[("client_secret", secret), ("success", "false")],
        )
        .await;
    }
}

#[tokio::test]
async fn a_subscription_in_stripe_sets_the_plan_and_follows_it_to_its_end() {
    let stripe = LocalStripe::start().await;
    let (app, _dir) = billed(&stripe.base, 7).await;
    stripe.send_events_to(&app).await;
    let owner = app.signup("acme", "owner@acme.example").await;
    let view = plan_of(&app, &owner.token).await;
    assert_eq!(view["plan"]["key"], "free");
    assert_eq!(view["billing"]["enabled"], true);
    assert_eq!(view["billing"]["has_account"], false);

    let customer = stripe.customer(&owner.org_id).await;
    let team = stripe
        .subscribe(&customer, "plan_team", &owner.org_id)
        .await;
    let view = wait_plan(&app, &owner.token, "team").await;
    assert_eq!(view["limits"]["seats"], 25);
    assert_eq!(view["billing"]["subscription_status"], "active");
    assert_eq!(view["billing"]["has_account"], true);

    // A change of plan: a newer subscription replaces the older, whose end then changes
    // nothing (it is no longer the one followed).
    let business = stripe
        .subscribe(&customer, "plan_business", &owner.org_id)
        .await;
    wait_plan(&app, &owner.token, "business").await;
    stripe.delete(&format!("/v1/subscriptions/{team}")).await;
    let ended = "SELECT count(*) FROM billing_events WHERE kind = 'customer.subscription.deleted'";
    app.wait_count(ended, 1, 20).await;
    assert_eq!(plan_of(&app, &owner.token).await["plan"]["key"], "business");

    // The followed subscription ends: back to the default plan.
    stripe
        .delete(&format!("/v1/subscriptions/{business}"))
        .await;
    app.wait_count(ended, 2, 20).await;
    let view = wait_plan(&app, &owner.token, "free").await;
    assert_eq!(view["billing"]["subscription_status"], "canceled");

    let audit = app
        .get("/api/v1/audit-log?action=plan.", &owner.token)
        .await
        .assert_ok(200)
        .clone();
    let moves: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            (
                e["details"]["from"].as_str().unwrap().to_owned(),
                e["details"]["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [("free", "team"), ("team", "business"), ("business", "free")]
        .map(|(a, b)| (a.to_owned(), b.to_owned()));
    assert_eq!(moves, want);
    let changes = app
        .get(
            "/api/v1/audit-log?action=billing.subscription_changed",
            &owner.token,
        )
        .await;
    assert_eq!(
        changes.assert_ok(200)["items"].as_array().unwrap().len(),
        3,
        "{}",
        changes.body
    );
}

#[tokio::test]
async fn a_failed_payment_opens_a_grace_that_ends_on_the_default_plan_until_paid() {
    let stripe = LocalStripe::start().await;
    let (app, _dir) = billed(&stripe.base, 7).await;
    stripe.send_events_to(&app).await;
    let owner = app.signup("acme", "owner@acme.example").await;
    let admin = app.member(&owner, "admin@acme.example", "admin").await;
    let agent = app.member(&owner, "agent@acme.example", "agent").await;
    let customer = stripe.customer(&owner.org_id).await;
    let sub = stripe
        .subscribe(&customer, "plan_team", &owner.org_id)
        .await;
    wait_plan(&app, &owner.token, "team").await;

    // A card that asks its holder to authenticate each payment, and they decline.
    stripe.use_card(&customer, "4000002760003184").await;
    let invoice = stripe.invoice(&customer, &sub).await;
    let attempt = stripe.pay(&invoice).await;
    assert_eq!(attempt["status"], "open");
    stripe.decline_authentication(&attempt).await;
    let failed = "SELECT count(*) FROM billing_events WHERE kind = 'invoice.payment_failed'";
    app.wait_count(failed, 1, 20).await;

    // Owners and admins see it and are mailed; the plan stays for the grace.
    let view = plan_of(&app, &admin.token).await;
    assert_eq!(view["plan"]["key"], "team");
    let since = view["billing"]["past_due_since"]
        .as_str()
        .expect("past due");
    let ends = view["billing"]["grace_ends_at"].as_str().unwrap();
    let days = chrono::DateTime::parse_from_rfc3339(ends).unwrap()
        - chrono::DateTime::parse_from_rfc3339(since).unwrap();
    assert_eq!(days.num_days(), 7);
    // How the organisation pays is not its agents' business.
    let seen_by_agent = plan_of(&app, &agent.token).await;
    assert!(seen_by_agent["billing"]["past_due_since"].is_null());
    assert!(seen_by_agent["billing"]["subscription_status"].is_null());
    assert_eq!(seen_by_agent["plan"]["key"], "team");
    let mailed = app
        .count("SELECT count(*) FROM mails WHERE kind = 'payment_failed'")
        .await;
    assert_eq!(mailed, 2, "the owner and the admin, not the agent");
    // A retry that fails again neither mails again nor moves the grace.
    let attempt = stripe.pay(&invoice).await;
    stripe.decline_authentication(&attempt).await;
    app.wait_count(failed, 2, 20).await;
    assert_eq!(
        plan_of(&app, &owner.token).await["billing"]["grace_ends_at"],
        ends
    );
    assert_eq!(
        app.count("SELECT count(*) FROM mails WHERE kind = 'payment_failed'")
            .await,
        2
    );

    // The worker's round before the grace ends changes nothing; after it, the default plan.
    let db = app.running().db();
    assert_eq!(
        docket::billing::review_due(db, Utc::now() + chrono::Duration::days(6))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        docket::billing::review_due(db, Utc::now() + chrono::Duration::days(8))
            .await
            .unwrap(),
        1
    );
    assert_eq!(plan_of(&app, &owner.token).await["plan"]["key"], "free");

    // Paying brings the plan back.
    stripe.use_card(&customer, "4242424242424242").await;
    assert_eq!(stripe.pay(&invoice).await["status"], "paid");
    let view = wait_plan(&app, &owner.token, "team").await;
    assert!(view["billing"]["past_due_since"].is_null());
    let reasons: Vec<String> = app
        .get("/api/v1/audit-log?action=plan.changed", &owner.token)
        .await
        .assert_ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        reasons,
        ["payment_received", "payment_overdue", "subscription_active"]
    );
}

/// A signed Stripe event of `kind` about `object`, made at `created`.
pub(crate) fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    json!({"id": id, "object": "event", "type": kind, "created": created,
           "api_version": "2024-06-20", "data": {"object": object}})
}

pub(crate) fn subscription(
    id: &str,
    org: &str,
    customer: &str,
    price: &str,
    status: &str,
    created: i64,
) -> Value {
    json!({"id": id, "object": "subscription", "customer": customer, "created": created,
           "status": status, "cancel_at_period_end": false,
           "current_period_end": created + 30 * 86_400,
           "items": {"object": "list", "data": [{"id": "si_1", "price": {"id": price}}]},
           "metadata": {"docket_org_id": org}})
}

/// Posts `body` as Stripe would, signed with `secret` at `t`.
async fn deliver_raw(app: &TestApp, body: &[u8], secret: &str, t: i64) -> Resp {
    let signature = hex::encode(docket::billing::signature::sign(secret, t, body));
    app.send(
        app.client
            .post(format!("{}{WEBHOOK}", app.base))
            .header("content-type", "application/json")
            .header("stripe-signature", format!("t={t},v1={signature}"))
            .body(body.to_vec()),
    )
    .await
}

pub(crate) async fn deliver(app: &TestApp, event: &Value) -> Resp {
    deliver_raw(
        app,
        event.to_string().as_bytes(),
        WEBHOOK_SECRET,
        Utc::now().timestamp(),
    )
    .await
}

#[tokio::test]
async fn the_signature_is_checked_on_the_raw_body_and_an_event_acts_once() {
    let (app, _dir) = billed("http://127.0.0.1:9", 7).await;
    let owner = app.signup("acme", "owner@acme.example").await;
    let now = Utc::now().timestamp();
    let created = event(
        "evt_created",
        "customer.subscription.created",
        now,
        subscription("sub_1", &owner.org_id, "cus_1", "plan_team", "active", now),
    );
    let body = created.to_string();

    let wrong = deliver_raw(&app, body.as_bytes(), "whsec_someone_else", now).await;
    wrong.assert_problem(400, "invalid_signature");
    let old = deliver_raw(&app, body.as_bytes(), WEBHOOK_SECRET, now - 301).await;
    old.assert_problem(400, "invalid_signature");
    assert!(
        old.body["detail"].as_str().unwrap().contains("5 minutes"),
        "{}",
        old.body
    );
    let signature = hex::encode(docket::billing::signature::sign(
        WEBHOOK_SECRET,
        now,
        body.as_bytes(),
    ));
    let tampered = body.replace("plan_team", "plan_business");
    let res = app
        .send(
            app.client
                .post(format!("{}{WEBHOOK}", app.base))
                .header("stripe-signature", format!("t={now},v1={signature}"))
                .body(tampered),
        )
        .await;
    res.assert_problem(400, "invalid_signature");
    let unsigned = app
        .send(
            app.client
                .post(format!("{}{WEBHOOK}", app.base))
                .body(body.clone()),
        )
        .await;
    unsigned.assert_problem(400, "invalid_signature");
    let not_json = deliver_raw(&app, b"{not json", WEBHOOK_SECRET, now).await;
    not_json.assert_problem(400, "invalid_event");
    let not_a_subscription = event(
        "evt_x",
        "customer.subscription.updated",
        now,
        json!({"object": "invoice"}),
    );
    deliver(&app, &not_a_subscription)
        .await
        .assert_problem(400, "invalid_event");
    assert_eq!(
        app.count("SELECT count(*) FROM billing_events").await,
        0,
        "nothing refused is recorded"
    );
    assert_eq!(plan_of(&app, &owner.token).await["plan"]["key"], "free");

    // Signed with the retiring secret still passes while both are configured.
    let res = deliver_raw(&app, body.as_bytes(), "whsec_retired", now).await;
    assert_eq!(res.assert_ok(200)["outcome"], "applied");
    assert_eq!(plan_of(&app, &owner.token).await["plan"]["key"], "team");

    // The same event again (Stripe retries, or a replay within the tolerance): acted on once.
    let replays = futures::future::join_all((0..4).map(|_| deliver(&app, &created))).await;
    for res in replays {
        assert_eq!(res.assert_ok(200)["outcome"], "duplicate");
    }
    let changed = app
        .get("/api/v1/audit-log?action=billing.", &owner.token)
        .await;
    assert_eq!(changed.assert_ok(200)["items"].as_array().unwrap().len(), 1);

    // Kinds Docket does not act on, and organisations it does not know, are taken and ignored.
    let other = event(
        "evt_other",
        "customer.updated",
        now,
        json!({"object": "customer", "id": "cus_1"}),
    );
    assert_eq!(
        deliver(&app, &other).await.assert_ok(200)["outcome"],
        "ignored"
    );
    let stranger = event(
        "evt_stranger",
        "customer.subscription.created",
        now,
        subscription(
            "sub_9",
            "0b6f3c3e-9a52-4f43-9d5a-8f6c2a7e1d10",
            "cus_9",
            "plan_team",
            "active",
            now,
        ),
    );
    assert_eq!(
        deliver(&app, &stranger).await.assert_ok(200)["outcome"],
        "ignored"
    );
}

#[tokio::test]
async fn events_out_of_order_never_override_a_newer_state() {
    let (app, _dir) = billed("http://127.0.0.1:9", 7).await;
    let owner = app.signup("acme", "owner@acme.example").await;
    let org = owner.org_id.as_str();
    let t = Utc::now().timestamp() - 120;
    let team = |status| subscription("sub_1", org, "cus_1", "plan_team", status, t);
    let business = subscription("sub_1", org, "cus_1", "plan_business", "active", t);

    // The update (to business) arrives before the creation (on team): the creation is stale.
    let updated = event("evt_2", "customer.subscription.updated", t + 60, business);
    assert_eq!(
        deliver(&app, &updated).await.assert_ok(200)["outcome"],
        "applied"
    );
    let created = event("evt_1", "customer.subscription.created", t, team("active"));
    assert_eq!(
        deliver(&app, &created).await.assert_ok(200)["outcome"],
        "stale"
    );
    assert_eq!(plan_of(&app, &owner.token).await["plan"]["key"], "business");

    // Cancelled at the period's end: the plan stays until then, and the worker ends it.
    let mut cancelling = subscription("sub_1", org, "cus_1", "plan_business", "active", t);
    cancelling["cancel_at_period_end"] = json!(true);
    let cancel = event("evt_3", "customer.subscription.updated", t + 90, cancelling);
    assert_eq!(
        deliver(&app, &cancel).await.assert_ok(200)["outcome"],
        "applied"
    );
    let view = plan_of(&app, &owner.token).await;
    assert_eq!(view["plan"]["key"], "business");
    let cancel_at = view["billing"]["cancel_at"]
        .as_str()
        .expect("cancel_at")
        .to_owned();
    let db = app.running().db();
    assert_eq!(
        docket::billing::review_due(db, Utc::now() + chrono::Duration::days(29))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        docket::billing::review_due(db, Utc::now() + chrono::Duration::days(31))
            .await
            .unwrap(),
        1
    );
    assert_eq!(plan_of(&app, &owner.token).await["plan"]["key"], "free");

    // An older update that arrives last (still on business, not cancelling) changes nothing.
    let late = event(
        "evt_4",
        "customer.subscription.updated",
        t + 70,
        team("active"),
    );
    assert_eq!(
        deliver(&app, &late).await.assert_ok(200)["outcome"],
        "stale"
    );
    let view = plan_of(&app, &owner.token).await;
    assert_eq!(
        (
            view["plan"]["key"].as_str(),
            view["billing"]["cancel_at"].as_str()
        ),
        (Some("free"), Some(cancel_at.as_str()))
    );

    // An older subscription of the same customer does not take over from a newer one.
    let newer = subscription("sub_2", org, "cus_1", "plan_team", "active", t + 100);
    let newer = event("evt_5", "customer.subscription.created", t + 100, newer);
    assert_eq!(
        deliver(&app, &newer).await.assert_ok(200)["outcome"],
        "applied"
    );
    let older = subscription("sub_0", org, "cus_1", "plan_business", "active", t - 1000);
    let older = event("evt_6", "customer.subscription.updated", t + 110, older);
    assert_eq!(
        deliver(&app, &older).await.assert_ok(200)["outcome"],
        "stale"
    );
    assert_eq!(plan_of(&app, &owner.token).await["plan"]["key"], "team");
}

/// What Docket sent to the fixture Stripe.
#[derive(Clone, Debug)]
struct Sent {
    path: String,
    headers: HeaderMap,
    form: Vec<(String, String)>,
}

#[derive(Clone, Default)]
struct Fixture {
    sent: Arc<Mutex<Vec<Sent>>>,
    refuse: Arc<Mutex<bool>>,
}

/// A server that answers Docket's Checkout, Billing Portal and customer calls with the objects
/// of Stripe's API reference (trimmed to the fields Docket reads and a few around them).
async fn fixture_stripe() -> (String, Fixture) {
    async fn answer(
        State(fixture): State<Fixture>,
        uri: axum::http::Uri,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> (axum::http::StatusCode, axum::Json<Value>) {
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
        let path = uri.path().to_owned();
        fixture.sent.lock().unwrap().push(Sent {
            path: path.clone(),
            headers,
            form: form.clone(),
        });
        if *fixture.refuse.lock().unwrap() {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(
                    json!({"error": {"type": "invalid_request_error", "code": "resource_missing",
                    "message": "No such price: 'plan_team'", "param": "line_items[0][price]"}}),
                ),
            );
        }
        let value = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let object = match path.as_str() {
            "/v1/customers" => json!({"id": "cus_NffrFeUfNV2Hib", "object": "customer",
                "email": value("email"), "name": value("name"), "livemode": false,
                "metadata": {"docket_org_id": value("metadata[docket_org_id]")}}),
            "/v1/checkout/sessions" => {
                json!({"id": "cs_test_a11YYufWQzNY63zpQ6QSNRQhkUpVph4WRmzW0zWJO2znZKdVujZ0N0S22u",
                "object": "checkout.session", "mode": "subscription", "status": "open",
                "customer": value("customer"), "client_reference_id": value("client_reference_id"),
                "success_url": value("success_url"), "cancel_url": value("cancel_url"),
                "url": "https://checkout.stripe.com/c/pay/cs_test_a11YYufWQzNY63zpQ6QSNRQhkUpVph4WRmzW0zWJO2znZKdVujZ0N0S22u"})
            }
            "/v1/billing_portal/sessions" => json!({"id": "bps_1MrSjzLkdIwHu7ixex0IvU9b",
                "object": "billing_portal.session", "customer": value("customer"),
                "return_url": value("return_url"), "livemode": false,
                "url": "https://billing.stripe.com/p/session/test_YWNjdF8xTTJKVGtMa2RJd0h1N2l4LF9OZ"}),
            _ => {
                return (
                    axum::http::StatusCode::NOT_FOUND,
                    axum::Json(json!({"error": {"message": "no route"}})),
                );
            }
        };
        (axum::http::StatusCode::OK, axum::Json(object))
    }
    let fixture = Fixture::default();
    let router = axum::Router::new()
        .route("/v1/{*path}", post(answer))
        .with_state(fixture.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base, fixture)
}

#[tokio::test]
async fn owners_check_out_and_open_the_portal_through_stripe() {
    let (base, fixture) = fixture_stripe().await;
    let (app, _dir) = billed(&base, 7).await;
    let owner = app.signup("acme", "owner@acme.example").await;
    let admin = app.member(&owner, "admin@acme.example", "admin").await;

    // Owners only, signed in (no API token), and only for a plan with a price.
    let checkout = |token: String, plan: &'static str| {
        let app = &app;
        async move {
            app.post(
                "/api/v1/billing/checkout",
                Some(&token),
                json!({"plan": plan}),
            )
            .await
        }
    };
    checkout(admin.token.clone(), "team")
        .await
        .assert_problem(403, "forbidden");
    checkout(owner.token.clone(), "free")
        .await
        .assert_problem(422, "plan_not_purchasable");
    checkout(owner.token.clone(), "gold")
        .await
        .assert_problem(422, "unknown_plan");
    app.post(
        "/api/v1/billing/checkout",
        Some(&owner.token),
        json!({"plan": "team", "seats": 3}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post("/api/v1/billing/portal", Some(&owner.token), json!({}))
        .await
        .assert_problem(409, "no_billing_account");
    assert!(fixture.sent.lock().unwrap().is_empty());

    let res = checkout(owner.token.clone(), "team").await;
    assert!(
        res.assert_ok(200)["url"]
            .as_str()
            .unwrap()
            .starts_with("https://checkout.stripe.com/c/pay/cs_test_")
    );
    let sent = fixture.sent.lock().unwrap().clone();
    let paths: Vec<&str> = sent.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["/v1/customers", "/v1/checkout/sessions"]);
    for s in &sent {
        assert_eq!(s.headers["authorization"], format!("Bearer {SECRET_KEY}"));
        assert_eq!(
            s.headers["stripe-version"],
            docket::billing::stripe::API_VERSION
        );
        assert_eq!(
            s.headers["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert!(!s.headers["idempotency-key"].is_empty());
    }
    assert_eq!(
        sent[0].headers["idempotency-key"],
        format!("docket-customer-{}", owner.org_id).as_str()
    );
    let field = |s: &Sent, key: &str| {
        s.form
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        field(&sent[0], "metadata[docket_org_id]").as_deref(),
        Some(owner.org_id.as_str())
    );
    assert_eq!(
        field(&sent[0], "email").as_deref(),
        Some("owner@acme.example")
    );
    let session = &sent[1];
    for (key, want) in [
        ("mode", "subscription"),
        ("customer", "cus_NffrFeUfNV2Hib"),
        ("line_items[0][price]", "plan_team"),
        ("line_items[0][quantity]", "1"),
        ("client_reference_id", owner.org_id.as_str()),
        (
            "subscription_data[metadata][docket_org_id]",
            owner.org_id.as_str(),
        ),
        (
            "success_url",
            "https://docket.test/admin/settings?billing=done#plan",
        ),
    ] {
        assert_eq!(field(session, key).as_deref(), Some(want), "{key}");
    }
    assert_ne!(
        session.headers["idempotency-key"],
        sent[0].headers["idempotency-key"]
    );

    // The customer is kept: a second checkout and the portal reuse it.
    checkout(owner.token.clone(), "business")
        .await
        .assert_ok(200);
    let res = app
        .post("/api/v1/billing/portal", Some(&owner.token), json!({}))
        .await;
    assert!(
        res.assert_ok(200)["url"]
            .as_str()
            .unwrap()
            .starts_with("https://billing.stripe.com/p/session/")
    );
    let sent = fixture.sent.lock().unwrap().clone();
    let paths: Vec<&str> = sent.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths[2..],
        ["/v1/checkout/sessions", "/v1/billing_portal/sessions"]
    );
    assert_eq!(
        field(&sent[3], "customer").as_deref(),
        Some("cus_NffrFeUfNV2Hib")
    );
    assert_eq!(
        plan_of(&app, &owner.token).await["billing"]["has_account"],
        true
    );

    // Once it pays, the plan changes in the portal.
    let t = Utc::now().timestamp();
    let sub = subscription(
        "sub_1",
        &owner.org_id,
        "cus_NffrFeUfNV2Hib",
        "plan_team",
        "active",
        t,
    );
    deliver(
        &app,
        &event("evt_1", "customer.subscription.created", t, sub),
    )
    .await
    .assert_ok(200);
    checkout(owner.token.clone(), "business")
        .await
        .assert_problem(409, "already_subscribed");

    // Stripe refusing is a 502 that says so; nothing is half done.
    *fixture.refuse.lock().unwrap() = true;
    let res = app
        .post("/api/v1/billing/portal", Some(&owner.token), json!({}))
        .await;
    res.assert_problem(502, "payment_provider_error");
    assert!(
        res.body["detail"]
            .as_str()
            .unwrap()
            .contains("No such price")
    );
}

#[tokio::test]
async fn without_stripe_there_is_no_checkout_and_no_webhook() {
    let app = spawn_app().await;
    let owner = app.signup("acme", "owner@acme.example").await;
    app.post(
        "/api/v1/billing/checkout",
        Some(&owner.token),
        json!({"plan": "team"}),
    )
    .await
    .assert_problem(409, "billing_not_configured");
    let unsigned = app
        .call(Method::POST, WEBHOOK, None, Some(json!({"id": "evt_1"})))
        .await;
    unsigned.assert_problem(400, "invalid_signature");
    let signed = deliver(&app, &json!({"id": "evt_1"})).await;
    signed.assert_problem(404, "stripe_webhook_not_found");
    let view = plan_of(&app, &owner.token).await;
    assert_eq!(view["billing"]["enabled"], false);
}

#[tokio::test]
async fn an_unreachable_stripe_is_a_clear_502() {
    let (app, _dir) = billed(&format!("http://127.0.0.1:{}", free_port()), 7).await;
    let owner = app.signup("acme", "owner@acme.example").await;
    let res = app
        .post(
            "/api/v1/billing/checkout",
            Some(&owner.token),
            json!({"plan": "team"}),
        )
        .await;
    res.assert_problem(502, "payment_provider_unreachable");
    assert_eq!(
        app.count("SELECT count(*) FROM org_billing WHERE customer_id IS NOT NULL")
            .await,
        0
    );
}
