//! Who may see and do what: argon2id password hashes, session cookies (only a hash of the
//! token is stored), a CSRF token per session checked on every state-changing request, and
//! a limit on wrong passwords per user name and per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The name of the session cookie.
pub const COOKIE: &str = "hq_session";

/// The shortest password `hq` accepts.
pub const MIN_PASSWORD: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password is {0} characters long; use at least {MIN_PASSWORD}")]
    TooShort(usize),
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// An argon2id PHC string for `password` (argon2's recommended parameters). CPU-bound: call it
/// from a blocking thread in a server.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(PasswordError::TooShort(n));
    }
    let mut raw = [0u8; 16];
    rand::rng().fill_bytes(&mut raw);
    let salt = SaltString::encode_b64(&raw).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches `hash`. A malformed stored hash matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(h) => Argon2::default().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// A hash of a password nobody has, verified against when the user does not exist, so that
/// an unknown name takes as long to refuse as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy-password-nobody-has").unwrap_or_default())
}

/// 32 random bytes, hex: a session token or a CSRF token.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex(&b)
}

/// What the database keeps of a session token.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Compares without stopping at the first difference.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').filter_map(|p| p.trim().split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// Wrong passwords allowed per user name within the window before it is locked.
const PER_USER: u32 = 5;
/// Wrong passwords allowed per client address within the window.
const PER_ADDRESS: u32 = 20;
const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Counts wrong passwords; kept in memory (a restart forgets them, which only helps someone
/// who can restart the server anyway).
#[derive(Default)]
pub struct Limiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Limiter {
    fn keys(user: &str, addr: Option<IpAddr>) -> [(String, u32); 2] {
        [
            (format!("u:{}", user.to_lowercase()), PER_USER),
            (addr.map_or_else(|| "a:?".to_string(), |a| format!("a:{a}")), PER_ADDRESS),
        ]
    }

    /// `Some(wait)` when this user or address must wait before trying again.
    pub fn check(&self, user: &str, addr: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        Limiter::keys(user, addr)
            .iter()
            .filter_map(|(k, max)| {
                let (n, first) = map.get(k)?;
                let left = WINDOW.checked_sub(now.duration_since(*first)).filter(|l| !l.is_zero())?;
                (*n >= *max).then_some(left)
            })
            .max()
    }

    pub fn failed(&self, user: &str, addr: Option<IpAddr>, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (_, first)| now.duration_since(*first) < WINDOW);
        }
        for (k, _) in Limiter::keys(user, addr) {
            let e = map.entry(k).or_insert((0, now));
            if now.duration_since(e.1) >= WINDOW {
                *e = (0, now);
            }
            e.0 += 1;
        }
    }

    /// A right password clears the user's count (not the address's).
    pub fn succeeded(&self, user: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("u:{}", user.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong horse battery", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(matches!(hash_password("short"), Err(PasswordError::TooShort(5))));
    }

    #[test]
    fn the_limiter_locks_a_name_after_five_failures_and_forgets_after_the_window() {
        let l = Limiter::default();
        let t = Instant::now();
        let a: Option<IpAddr> = Some([127, 0, 0, 1].into());
        for _ in 0..5 {
            assert!(l.check("Alice", a, t).is_none());
            l.failed("alice", a, t);
        }
        assert!(l.check("ALICE", a, t).is_some());
        assert!(l.check("bob", a, t).is_none());
        assert!(l.check("alice", a, t + WINDOW).is_none());
        l.succeeded("alice");
        assert!(l.check("alice", a, t).is_none());
    }

    #[test]
    fn cookies_and_tokens() {
        assert_eq!(cookie("a=1; hq_session=abc; b=2", COOKIE), Some("abc"));
        assert_eq!(cookie("a=1", COOKIE), None);
        let t = random_token();
        assert_eq!(t.len(), 64);
        assert_ne!(t, random_token());
        assert!(same(&t, &t.clone()) && !same(&t, &random_token()) && !same("a", "ab"));
        assert_eq!(token_hash("x").len(), 64);
    }
}
