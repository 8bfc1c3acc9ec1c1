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

/// A new id for a request. The server always makes its own: a caller's id is only logged
/// beside it (see [`plain`]), so what the audit trail records cannot be chosen by the caller.
pub fn generate() -> String {
    Uuid::now_v7().to_string()
}

/// A caller's own request id, when it is short and plain enough to log.
pub fn plain(incoming: Option<&str>) -> Option<&str> {
    incoming.filter(|id| {
        (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    })
}
