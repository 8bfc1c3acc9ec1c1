//! Password hashing with argon2id, off the async runtime (hashing is deliberately slow).
//!
//! Each hash takes a core and about 19 MiB for tens of milliseconds, so hashes run a few at a
//! time (one per core) with a short queue; beyond it, sign-ups and sign-ins are answered 503
//! with `Retry-After` at once instead of piling up threads and memory.

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::{self, Output, ParamsString, PasswordHash, Salt, SaltString, rand_core::OsRng},
};

use std::{
    sync::{
        Arc, Mutex,
        mpsc::{SyncSender, TrySendError},
    },
    time::Duration,
};

use crate::error::{Error, Result};

/// Hashes that may wait for a hashing thread, per thread; more are refused at once.
const QUEUE_PER_SLOT: usize = 4;
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A hash or verification waiting for a hashing thread; it runs with that thread's memory.
type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// A hashing thread's argon2 working memory (about 19 MiB), allocated once and reused by every
/// hash the thread runs, so a burst of sign-ins leaves no freed-but-kept blocks behind.
type Memory = Vec<Block>;

/// The password hashing threads of a server, one per core, and their bounded queue. Dedicated
/// threads (rather than the runtime's blocking pool, which grows a thread per waiting task) keep
/// argon2's memory in as many allocator arenas as there are threads. The threads end when the
/// last handle is dropped.
#[derive(Clone)]
pub struct Hasher {
    queue: SyncSender<Job>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher")
    }
}

impl Hasher {
    pub fn start() -> Self {
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let (queue, jobs) = std::sync::mpsc::sync_channel::<Job>(threads * QUEUE_PER_SLOT);
        let jobs = Arc::new(Mutex::new(jobs));
        for n in 0..threads {
            let jobs = jobs.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("docket-hash-{n}"))
                .spawn(move || {
                    let mut memory = Memory::new();
                    loop {
                        let next = jobs
                            .lock()
                            .map_err(drop)
                            .and_then(|j| j.recv().map_err(drop));
                        let Ok(job) = next else { return };
                        // A panicking job must not take its thread with it.
                        let run = std::panic::AssertUnwindSafe(|| job(&mut memory));
                        let _ = std::panic::catch_unwind(run);
                    }
                });
            if let Err(err) = spawned {
                tracing::error!(error = %err, "cannot start a password hashing thread");
            }
        }
        Self { queue }
    }

    /// Runs `work` (one hash or verification) on a hashing thread; refuses with 503 at once when
    /// the queue is full.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Memory) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = done.send(work(memory));
        });
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!("docket_password_hashing_refused_total").increment(1);
                return Err(Error::Unavailable {
                    detail: "too many sign-ins at once; retry shortly".into(),
                    retry_after: BUSY_RETRY_AFTER,
                });
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(Error::internal(anyhow::anyhow!(
                    "no password hashing thread is running"
                )));
            }
        }
        result
            .await
            .map_err(|_| Error::internal(anyhow::anyhow!("a password hashing job was lost")))?
    }

    pub async fn hash(&self, password: &str) -> Result<String> {
        let password = password.to_owned();
        self.run(move |memory| {
            let argon = Argon2::default();
            let salt = SaltString::generate(&mut OsRng);
            let hashed = PasswordHash {
                algorithm: argon2::ARGON2ID_IDENT,
                version: Some(Version::default().into()),
                params: ParamsString::try_from(argon.params()).map_err(hashing)?,
                salt: Some(salt.as_salt()),
                hash: Some(derive(&argon, password.as_bytes(), salt.as_salt(), memory)?),
            };
            Ok(hashed.to_string())
        })
        .await
    }

    /// Verifies a password; with no stored hash (unknown account) it still does the work of one
    /// verification, so response time does not reveal whether an account exists.
    pub async fn verify(&self, password: &str, stored: Option<String>) -> Result<bool> {
        let password = password.to_owned();
        self.run(move |memory| {
            // Erased accounts carry a hash nothing matches; treat them like unknown ones.
            let real = stored.as_deref().and_then(|s| PasswordHash::new(s).ok());
            let parsed = match &real {
                Some(parsed) => parsed.clone(),
                None => PasswordHash::new(DUMMY_HASH).map_err(hashing)?,
            };
            let argon = Argon2::new(
                Algorithm::try_from(parsed.algorithm).map_err(hashing)?,
                parsed
                    .version
                    .map(Version::try_from)
                    .transpose()
                    .map_err(hashing)?
                    .unwrap_or_default(),
                Params::try_from(&parsed).map_err(hashing)?,
            );
            let salt = parsed
                .salt
                .ok_or_else(|| hashing("the stored hash has no salt"))?;
            let derived = derive(&argon, password.as_bytes(), salt, memory)?;
            // `Output` compares in constant time.
            Ok(parsed.hash == Some(derived) && real.is_some())
        })
        .await
    }
}

/// argon2's output for `password` and `salt`, computed in the thread's reused memory.
fn derive(argon: &Argon2, password: &[u8], salt: Salt, memory: &mut Memory) -> Result<Output> {
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes).map_err(hashing)?;
    let params = argon.params();
    memory.resize(params.block_count(), Block::default());
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    Output::init_with(len, |out| {
        argon
            .hash_password_into_with_memory(password, salt, out, &mut memory[..])
            .map_err(password_hash::Error::from)
    })
    .map_err(hashing)
}

fn hashing(err: impl std::fmt::Display) -> Error {
    Error::internal(anyhow::anyhow!("password hashing: {err}"))
}

pub const MIN_LENGTH: usize = 10;
/// The estimator's score a password needs: 3 is "safely unguessable" (10^10 guesses or more).
const MIN_SCORE: zxcvbn::Score = zxcvbn::Score::Three;
pub const MAX_LENGTH: usize = 1024;

/// Length limits, then strength: a password a guesser would try early (`password123`, a
/// keyboard run, a repeated character, the person's own name or address) is refused with the
/// estimator's reason. `about_the_person` are their name and email address.
pub fn validate(password: &str, about_the_person: &[&str]) -> Result<()> {
    let chars = password.chars().count();
    if chars < MIN_LENGTH {
        return Err(Error::invalid(
            "password",
            format!("must be at least {MIN_LENGTH} characters"),
        ));
    }
    if chars > MAX_LENGTH {
        return Err(Error::invalid(
            "password",
            format!("must be at most {MAX_LENGTH} characters"),
        ));
    }
    let estimate = zxcvbn::zxcvbn(password, about_the_person);
    if estimate.score() < MIN_SCORE {
        let feedback = estimate.feedback();
        let reason = feedback
            .and_then(|f| f.warning())
            .map(|w| w.to_string())
            .or_else(|| {
                feedback
                    .and_then(|f| f.suggestions().first())
                    .map(|s| s.to_string())
            })
            .unwrap_or_else(|| "it would be guessed too easily".into());
        return Err(Error::invalid(
            "password",
            format!("is too easy to guess: {reason}"),
        ));
    }
    Ok(())
}

/// An argon2id hash (default parameters) of a random string nobody knows.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0a4d2XkT8FQzZ5c8WbXNbPS6yMPJMi0lAN6Yd1YKc7Q";

/// A hash no password matches: for contacts (customers known only by mail), and for accounts
/// inbound mail made before contacts existed (a password reset claims those).
pub const NOT_SET_HASH: &str = "!not-set";

/// A hash no password matches: for erased accounts.
pub const UNUSABLE_HASH: &str = "!erased";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let hasher = Hasher::start();
        let (hash, verify) = (
            |p: &'static str| hasher.hash(p),
            |p: &'static str, stored| hasher.verify(p, stored),
        );
        let a = hash("correct horse battery").await.unwrap();
        let b = hash("correct horse battery").await.unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "salted");
        assert!(
            verify("correct horse battery", Some(a.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse battery", Some(a)).await.unwrap());
        assert!(!verify("anything at all", None).await.unwrap());
        assert!(
            !verify("anything at all", Some(UNUSABLE_HASH.into()))
                .await
                .unwrap()
        );
    }

    #[test]
    fn length_rules() {
        assert!(validate("short", &[]).is_err());
        assert!(validate("vX9#kq2!Lm", &[]).is_ok());
        assert!(validate(&"x".repeat(MAX_LENGTH + 1), &[]).is_err());
    }

    #[test]
    fn guessable_passwords_are_refused_with_a_reason() {
        for weak in [
            "          ",
            "aaaaaaaaaaaa",
            "1234567890",
            "password123",
            "qwertyuiop",
        ] {
            let Err(Error::Validation(errors)) = validate(weak, &[]) else {
                panic!("{weak:?} was accepted");
            };
            assert!(
                errors[0].message.starts_with("is too easy to guess: "),
                "{errors:?}"
            );
        }
        assert!(validate("ann.smith@example.com", &["ann.smith@example.com"]).is_err());
        for strong in ["correct horse battery", "another good one", "vX9#kq2!Lm"] {
            assert!(validate(strong, &[]).is_ok(), "{strong}");
        }
    }
}
