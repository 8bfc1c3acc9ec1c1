//! The id of the request being served, visible to every layer below the HTTP middleware that
//! sets it (errors, logs, audit entries).

use uuid::Uuid;

tokio::task_local! {
    static CURRENT: String;
}

/// Runs `fut` with `id` as the current request id.
pub async fn scope<F: Future>(id: String, fut: F) -> F::Output {
    CURRENT.scope(id, fut).await
}

pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Accepts a caller's id when it is short and plain; otherwise makes a new one.
pub fn accept_or_generate(incoming: Option<&str>) -> String {
    match incoming {
        Some(id)
            if (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
        {
            id.to_owned()
        }
        _ => Uuid::now_v7().to_string(),
    }
}
