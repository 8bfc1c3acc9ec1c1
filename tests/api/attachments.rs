//! Attachments over HTTP, on each database backend and on both stores (a local directory and a
//! real S3-compatible server): uploads byte for byte, ranges, limits and quota, privacy of
//! internal notes, removal through the outbox, the orphan sweep, and files of inbound mail.

use reqwest::{
    Method,
    multipart::{Form, Part},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::helpers::*;

const MIB: u64 = 1024 * 1024;
const PNG: [u8; 16] = [
    0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D, b'I', b'H', b'D', b'R',
];

/// A server storing files in `store`, with `max` bytes per file and a `quota` (0 = none).
async fn app_on(store: Store, max: u64, quota: u64) -> TestApp {
    let url = store.url().await;
    spawn_app_tuned(None, move |_, serve| {
        serve.files.object_store_url = url;
        serve.files.max_attachment_bytes = max;
        serve.files.org_storage_quota_bytes = quota;
    })
    .await
}

/// Deterministic bytes that are no known file type.
fn noise(len: usize, seed: u8) -> Vec<u8> {
    let mut state = seed as u32 | 0x100;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (state >> 16) as u8 | 0x80
        })
        .collect()
}

fn form(files: &[(&str, &[u8], &str)]) -> Form {
    files
        .iter()
        .fold(Form::new(), |form, (name, bytes, claimed)| {
            let part = Part::bytes(bytes.to_vec())
                .file_name(name.to_string())
                .mime_str(claimed)
                .unwrap();
            form.part("file", part)
        })
}

async fn upload(app: &TestApp, token: &str, ticket: &str, query: &str, form: Form) -> Resp {
    let path = format!("/api/v1/tickets/{ticket}/attachments{query}");
    app.send(
        app.request(Method::POST, &path, Some(token))
            .multipart(form),
    )
    .await
}

async fn download(app: &TestApp, token: &str, id: &str, range: Option<&str>) -> reqwest::Response {
    let mut req = app.request(
        Method::GET,
        &format!("/api/v1/attachments/{id}"),
        Some(token),
    );
    if let Some(range) = range {
        req = req.header("range", range);
    }
    req.send().await.unwrap()
}

async fn blobs(app: &TestApp) -> usize {
    let later = chrono::Utc::now() + chrono::Duration::days(1);
    app.running()
        .files()
        .written_before(later)
        .await
        .expect("store listed")
        .len()
}

struct Desk {
    app: TestApp,
    owner: Session,
    ticket: String,
}

async fn desk(store: Store, max: u64, quota: u64) -> Desk {
    let app = app_on(store, max, quota).await;
    let owner = app.signup("acme", "owner@acme.test").await;
    let project = app.project(&owner.token, "OPS").await;
    let ticket = app.ticket(&owner.token, &project, json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    Desk { app, owner, ticket }
}

#[tokio::test]
async fn files_come_back_byte_for_byte_whole_and_in_ranges() {
    for store in Store::ALL {
        let Desk { app, owner, ticket } = desk(store, 25 * MIB, 0).await;
        // Larger than the JSON body limit and than one S3 part: the upload streams.
        let big = noise(6 * MIB as usize + 123, 7);
        let html = b"<html><script>alert(1)</script></html>".to_vec();
        let res = upload(
            &app,
            &owner.token,
            &ticket,
            "",
            form(&[
                ("../../logs/server.log", &big, "text/plain"),
                ("shot.png", &PNG, "image/png"),
                ("invoice.png", &html, "image/png"),
            ]),
        )
        .await;
        let items = res.assert_ok(201)["items"].as_array().unwrap().clone();
        assert_eq!(items.len(), 3, "{store:?}");
        let log = &items[0];
        assert_eq!(log["filename"], "server.log");
        assert_eq!(log["size"], big.len() as u64);
        assert_eq!(log["sha256"], hex::encode(Sha256::digest(&big)));
        assert_eq!(log["content_type"], "application/octet-stream");
        assert_eq!(log["uploaded_by"], owner.user_id.as_str());
        assert_eq!(log["comment_id"], Value::Null);
        assert_eq!(items[1]["content_type"], "image/png");
        // The type comes from the bytes, not from what the client claimed.
        assert_ne!(items[2]["content_type"], "image/png");

        let listed = app
            .get(
                &format!("/api/v1/tickets/{ticket}/attachments"),
                &owner.token,
            )
            .await;
        assert_eq!(listed.assert_ok(200)["items"].as_array().unwrap().len(), 3);

        let id = log["id"].as_str().unwrap();
        let whole = download(&app, &owner.token, id, None).await;
        assert_eq!(whole.status(), 200);
        let h = whole.headers().clone();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["content-security-policy"], "sandbox");
        assert_eq!(h["accept-ranges"], "bytes");
        assert!(
            h["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment;")
        );
        assert_eq!(
            whole.bytes().await.unwrap().as_ref(),
            big.as_slice(),
            "{store:?}"
        );

        let part = download(&app, &owner.token, id, Some("bytes=100-199")).await;
        assert_eq!(part.status(), 206);
        assert_eq!(
            part.headers()["content-range"],
            format!("bytes 100-199/{}", big.len()).as_str()
        );
        assert_eq!(part.bytes().await.unwrap().as_ref(), &big[100..200]);
        let tail = download(&app, &owner.token, id, Some("bytes=-10")).await;
        assert_eq!(tail.bytes().await.unwrap().as_ref(), &big[big.len() - 10..]);
        let beyond = format!("bytes={}-", big.len());
        let res = download(&app, &owner.token, id, Some(&beyond)).await;
        assert_eq!(res.status(), 416);
        assert_eq!(
            res.headers()["content-range"],
            format!("bytes */{}", big.len()).as_str()
        );

        // Only raster images may be shown inline; HTML never is.
        let png = download(&app, &owner.token, items[1]["id"].as_str().unwrap(), None).await;
        assert!(
            png.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("inline;")
        );
        let page = download(&app, &owner.token, items[2]["id"].as_str().unwrap(), None).await;
        let disposition = page.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(disposition.starts_with("attachment;"), "{disposition}");
        assert_eq!(page.bytes().await.unwrap().as_ref(), html.as_slice());

        // One file alone answers with the attachment itself.
        let one = upload(
            &app,
            &owner.token,
            &ticket,
            "",
            form(&[("a.txt", b"hello", "text/plain")]),
        )
        .await;
        let one = one.assert_ok(201);
        assert_eq!(one["filename"], "a.txt");
        assert_eq!(one["content_type"], "text/plain; charset=utf-8");
        assert_eq!(blobs(&app).await, 4);
        app.shutdown().await;
    }
}

#[tokio::test]
async fn limits_and_quota_refuse_with_nothing_kept() {
    for store in Store::ALL {
        let Desk { app, owner, ticket } = desk(store, MIB, 3 * MIB / 2).await;
        let over = noise(MIB as usize + 1, 1);
        upload(
            &app,
            &owner.token,
            &ticket,
            "",
            form(&[("big.bin", &over, "application/octet-stream")]),
        )
        .await
        .assert_problem(413, "payload_too_large");
        // A good file before a bad one in the same request is not kept either.
        let fine = noise(1000, 2);
        upload(
            &app,
            &owner.token,
            &ticket,
            "",
            form(&[("fine.bin", &fine, "x/y"), ("big.bin", &over, "x/y")]),
        )
        .await
        .assert_problem(413, "payload_too_large");
        assert_eq!(blobs(&app).await, 0, "{store:?}");
        let list = format!("/api/v1/tickets/{ticket}/attachments");
        assert_eq!(app.get(&list, &owner.token).await.body["items"], json!([]));

        let first = noise(MIB as usize, 3);
        let kept = upload(
            &app,
            &owner.token,
            &ticket,
            "",
            form(&[("one.bin", &first, "x/y")]),
        )
        .await;
        let kept_id = kept.assert_ok(201)["id"].as_str().unwrap().to_owned();
        let second = noise(MIB as usize, 4);
        upload(
            &app,
            &owner.token,
            &ticket,
            "",
            form(&[("two.bin", &second, "x/y")]),
        )
        .await
        .assert_problem(413, "quota_exceeded");
        assert_eq!(blobs(&app).await, 1, "{store:?}");

        // Removing a file frees its room; its bytes go when the event is handled.
        app.delete(&format!("/api/v1/attachments/{kept_id}"), &owner.token)
            .await
            .assert_ok(204);
        assert_eq!(blobs(&app).await, 1);
        app.run_pending_events().await;
        assert_eq!(blobs(&app).await, 0, "{store:?}");
        upload(
            &app,
            &owner.token,
            &ticket,
            "",
            form(&[("two.bin", &second, "x/y")]),
        )
        .await
        .assert_ok(201);
        app.shutdown().await;
    }
}

#[tokio::test]
async fn bad_uploads_get_precise_problems() {
    let Desk { app, owner, ticket } = desk(Store::Local, MIB, 0).await;
    let path = format!("/api/v1/tickets/{ticket}/attachments");
    let json_body = app
        .post(&path, Some(&owner.token), json!({"file": "x"}))
        .await;
    json_body.assert_problem(415, "unsupported_media_type");
    let broken = app
        .request(Method::POST, &path, Some(&owner.token))
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nunterminated");
    app.send(broken)
        .await
        .assert_problem(400, "invalid_multipart");
    let no_boundary = app
        .request(Method::POST, &path, Some(&owner.token))
        .header("content-type", "multipart/form-data")
        .body("x");
    app.send(no_boundary)
        .await
        .assert_problem(400, "invalid_multipart");
    let other_field = Form::new().text("note", "hi");
    let res = upload(&app, &owner.token, &ticket, "", other_field).await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["field"], "note");
    upload(
        &app,
        &owner.token,
        &ticket,
        "",
        Form::new().text("file", ""),
    )
    .await
    .assert_ok(201);
    let many: Vec<(String, Vec<u8>)> = (0..21).map(|i| (format!("{i}.txt"), vec![b'a'])).collect();
    let many = many.iter().fold(Form::new(), |f, (n, b)| {
        f.part("file", Part::bytes(b.clone()).file_name(n.clone()))
    });
    upload(&app, &owner.token, &ticket, "", many)
        .await
        .assert_problem(422, "validation_failed");
    upload(
        &app,
        &owner.token,
        &ticket,
        "?internal=maybe",
        form(&[("a", b"a", "x/y")]),
    )
    .await
    .assert_problem(400, "invalid_query");
    let missing = format!("/api/v1/tickets/{}/attachments", Uuid::now_v7());
    let res = app
        .send(
            app.request(Method::POST, &missing, Some(&owner.token))
                .multipart(form(&[("a", b"a", "x/y")])),
        )
        .await;
    res.assert_problem(404, "ticket_not_found");
    app.get(
        &format!("/api/v1/attachments/{}", Uuid::now_v7()),
        &owner.token,
    )
    .await
    .assert_problem(404, "attachment_not_found");
    app.get("/api/v1/attachments/not-a-uuid", &owner.token)
        .await
        .assert_problem(404, "not_found");
    // Only the empty-named file above was kept; every refusal left nothing behind.
    assert_eq!(blobs(&app).await, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn files_of_internal_notes_stay_with_staff() {
    let Desk { app, owner, .. } = desk(Store::Local, MIB, 0).await;
    let agent = app.member(&owner, "agent@acme.test", "agent").await;
    let customer = app.member(&owner, "customer@acme.test", "requester").await;
    let project = app.project(&owner.token, "HELP").await;
    let ticket = app.ticket(&customer.token, &project, json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The customer's screenshot, on their reply.
    let shot = upload(
        &app,
        &customer.token,
        &ticket,
        "",
        form(&[("shot.png", &PNG, "image/png")]),
    )
    .await;
    let shot = shot.assert_ok(201)["id"].as_str().unwrap().to_owned();
    let reply = app
        .post(
            &format!("/api/v1/tickets/{ticket}/comments"),
            Some(&customer.token),
            json!({"body": "see attached", "attachment_ids": [shot]}),
        )
        .await;
    let reply_id = reply.assert_ok(201)["id"].as_str().unwrap().to_owned();

    // The agent's log, for an internal note: staff-only from the upload on.
    upload(
        &app,
        &customer.token,
        &ticket,
        "?internal=true",
        form(&[("x", b"x", "x/y")]),
    )
    .await
    .assert_problem(403, "forbidden");
    let log = upload(
        &app,
        &agent.token,
        &ticket,
        "?internal=true",
        form(&[("trace.txt", b"secret trace", "text/plain")]),
    )
    .await;
    let log = log.assert_ok(201)["id"].as_str().unwrap().to_owned();
    let list = format!("/api/v1/tickets/{ticket}/attachments");
    assert_eq!(
        pluck(&app.get(&list, &customer.token).await.body["items"], "id"),
        std::slice::from_ref(&shot)
    );
    // Someone else's upload cannot be put on your comment.
    app.post(
        &format!("/api/v1/tickets/{ticket}/comments"),
        Some(&customer.token),
        json!({"body": "mine now", "attachment_ids": [log]}),
    )
    .await
    .assert_problem(422, "validation_failed");
    let note = app
        .post(
            &format!("/api/v1/tickets/{ticket}/comments"),
            Some(&agent.token),
            json!({"body": "from the server", "internal": true, "attachment_ids": [log]}),
        )
        .await;
    let note_id = note.assert_ok(201)["id"].as_str().unwrap().to_owned();
    let staff_view = app.get(&list, &agent.token).await;
    let items = staff_view.assert_ok(200)["items"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["comment_id"], reply_id.as_str());
    assert_eq!(items[1]["comment_id"], note_id.as_str());
    assert_eq!(items[1]["internal"], true);
    assert_eq!(
        pluck(&app.get(&list, &customer.token).await.body["items"], "id"),
        std::slice::from_ref(&shot)
    );
    assert_eq!(
        download(&app, &customer.token, &log, None).await.status(),
        404
    );
    assert_eq!(download(&app, &agent.token, &log, None).await.status(), 200);
    assert_eq!(
        download(&app, &customer.token, &shot, None).await.status(),
        200
    );
    app.delete(&format!("/api/v1/attachments/{log}"), &customer.token)
        .await
        .assert_problem(404, "attachment_not_found");
    app.delete(
        &format!("/api/v1/attachments/{shot}"),
        &app.member(&owner, "viewer@acme.test", "viewer").await.token,
    )
    .await
    .assert_problem(403, "forbidden");

    // The timeline tells staff of both files and the customer of theirs only.
    let timeline = format!("/api/v1/tickets/{ticket}/timeline");
    let kinds = |body: &Value| {
        pluck(&body["items"], "kind")
            .into_iter()
            .filter(|k| k.starts_with("attachment."))
            .count()
    };
    assert_eq!(kinds(&app.get(&timeline, &agent.token).await.body), 2);
    assert_eq!(kinds(&app.get(&timeline, &customer.token).await.body), 1);

    // Deleting the note removes its file, bytes included once the event is handled.
    let comment = app
        .request(
            Method::DELETE,
            &format!("/api/v1/comments/{note_id}"),
            Some(&agent.token),
        )
        .header("if-match", "*");
    app.send(comment).await.assert_ok(204);
    app.run_pending_events().await;
    assert_eq!(download(&app, &agent.token, &log, None).await.status(), 404);
    assert_eq!(blobs(&app).await, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_crash_between_blob_and_row_leaves_an_orphan_the_sweep_removes() {
    for store in Store::ALL {
        let Desk { app, owner, ticket } = desk(store, MIB, 0).await;
        let kept = upload(
            &app,
            &owner.token,
            &ticket,
            "",
            form(&[("kept.txt", b"kept", "text/plain")]),
        )
        .await;
        let kept = kept.assert_ok(201)["id"].as_str().unwrap().to_owned();
        // The bytes of an upload whose row never committed (the process died in between).
        let files = app.running().files();
        let org: Uuid = owner.org_id.parse().unwrap();
        let mut writer = files.writer(org, MIB);
        writer.write(b"orphan".to_vec().into()).await.ok().unwrap();
        writer.finish().await.unwrap();
        assert_eq!(blobs(&app).await, 2);

        let db = app.running().db();
        let hour = std::time::Duration::from_secs(3600);
        let young = docket::work::attachments::sweep_orphans(db, files, hour).await;
        assert_eq!(young.unwrap(), 0, "within the grace period nothing goes");
        let swept =
            docket::work::attachments::sweep_orphans(db, files, std::time::Duration::ZERO).await;
        assert_eq!(swept.unwrap(), 1, "{store:?}");
        assert_eq!(blobs(&app).await, 1);
        let still = download(&app, &owner.token, &kept, None).await;
        assert_eq!(still.bytes().await.unwrap().as_ref(), b"kept");
        app.shutdown().await;
    }
}

#[tokio::test]
async fn files_of_inbound_mail_become_attachments() {
    for store in Store::ALL {
        let Desk { app, owner, .. } = desk(store, MIB, 0).await;
        let org = app.get("/api/v1/org", &owner.token).await;
        let token = org.body["inbound_email_token"].as_str().unwrap().to_owned();
        let report = noise(3000, 9);
        let encoded = base64_lines(&report);
        let raw = format!(
            "From: Casey <casey@customer.test>\r\nTo: help@docket.test\r\nSubject: Broken export\r\n\
             Message-ID: <m1@customer.test>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\n\
             Content-Type: text/plain\r\n\r\nThe export fails, report attached.\r\n--b1\r\n\
             Content-Type: application/octet-stream\r\n\
             Content-Disposition: attachment; filename=\"report.bin\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--b1--\r\n"
        );
        let res = app
            .send(
                app.request(
                    Method::POST,
                    &format!("/api/v1/inbound/email/{token}"),
                    None,
                )
                .header("content-type", "message/rfc822")
                .body(raw),
            )
            .await;
        let outcome = res.assert_ok(202).clone();
        assert_eq!(outcome["outcome"], "ticket_created");
        let ids = outcome["attachment_ids"].as_array().unwrap();
        assert_eq!(ids.len(), 1, "{outcome}");
        let ticket = outcome["ticket_id"].as_str().unwrap();
        let listed = app
            .get(
                &format!("/api/v1/tickets/{ticket}/attachments"),
                &owner.token,
            )
            .await;
        let item = listed.assert_ok(200)["items"][0].clone();
        assert_eq!(item["filename"], "report.bin");
        let got = download(&app, &owner.token, item["id"].as_str().unwrap(), None).await;
        assert_eq!(
            got.bytes().await.unwrap().as_ref(),
            report.as_slice(),
            "{store:?}"
        );
        app.shutdown().await;
    }
}

fn base64_lines(bytes: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    text.as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[tokio::test]
async fn parallel_uploads_never_pass_the_quota() {
    let Desk { app, owner, ticket } = desk(Store::Local, MIB, 2 * MIB + MIB / 2).await;
    let data = noise(MIB as usize, 5);
    let uploads = (0..6).map(|_| {
        upload(
            &app,
            &owner.token,
            &ticket,
            "",
            form(&[("p.bin", &data, "x/y")]),
        )
    });
    let results = futures::future::join_all(uploads).await;
    let kept = results.iter().filter(|r| r.status == 201).count();
    assert_eq!(kept, 2);
    for refused in results.iter().filter(|r| r.status != 201) {
        refused.assert_problem(413, "quota_exceeded");
    }
    assert_eq!(blobs(&app).await, 2);
    let used: i64 = app.scalar("SELECT bytes FROM storage_usage").await;
    assert_eq!(used, 2 * MIB as i64);
    app.shutdown().await;
}
