//! Who is calling: Bearer tokens and Basic credentials checked against the
//! `[[tokens]]` of the config file (stored as SHA-256 hashes, re-read when the
//! file changes, so a removed token stops working without a restart), and the
//! session tokens a Flight handshake hands out. Knows nothing of SQL.
//!
//! A session token is signed, not remembered: `vs1.NAME.EXPIRES.MAC`, where
//! MAC is an HMAC-SHA256, under the server's session key, of the name, the
//! expiry and the credential as it was when the session began (its secret's
//! hash, role, account and expiry). A server that restarts with the same key
//! accepts it until it expires; a changed or removed credential ends it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use tonic::Status;

use crate::config::{Config, Role, TokenConfig};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// The account of a token with role `account`.
    pub org_id: Option<String>,
}

impl Principal {
    /// Whether this caller may see every account.
    pub fn sees_all(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Analyst)
    }
}

/// How long a session token from a handshake stays valid.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Session tokens remembered as ended early, at most.
const MAX_ENDED: usize = 10_000;
/// How often the config file's modification time is looked at.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// The hex SHA-256 of a secret, as `[[tokens]] sha256` stores it.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

struct Tokens {
    by_hash: HashMap<String, TokenConfig>,
    modified: Option<SystemTime>,
    checked: Instant,
}

impl Tokens {
    fn new(tokens: &[TokenConfig], modified: Option<SystemTime>) -> Tokens {
        let by_hash = tokens.iter().map(|t| (t.sha256.to_ascii_lowercase(), t.clone())).collect();
        Tokens { by_hash, modified, checked: Instant::now() }
    }
}

/// The key session tokens are signed with.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// A key for this run only: its sessions end when it stops.
    pub fn random() -> SessionKey {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        SessionKey(key)
    }

    /// The key in `path` (64 hex digits), created (readable by its owner
    /// only) when the file does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<SessionKey, String> {
        let parse = |text: &str| -> Option<SessionKey> {
            let text = text.trim();
            if text.len() != 64 || !text.is_ascii() {
                return None;
            }
            let mut key = [0u8; 32];
            for (i, b) in key.iter_mut().enumerate() {
                *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
            }
            Some(SessionKey(key))
        };
        match std::fs::read_to_string(path) {
            Ok(text) => parse(&text).ok_or_else(|| format!("session key file {}: expected 64 hex digits", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SessionKey::random();
                let hex: String = key.0.iter().map(|b| format!("{b:02x}")).collect();
                let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let written = options.open(&tmp).and_then(|mut f| std::io::Write::write_all(&mut f, format!("{hex}\n").as_bytes()).and_then(|()| f.sync_all()));
                if let Err(e) = written {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(format!("creating the session key file {}: {e}", path.display()));
                }
                // Another server starting at the same moment may have made one: the first wins.
                match std::fs::hard_link(&tmp, path) {
                    Ok(()) => {
                        let _ = std::fs::remove_file(&tmp);
                        Ok(key)
                    }
                    Err(_) => {
                        let _ = std::fs::remove_file(&tmp);
                        let text = std::fs::read_to_string(path).map_err(|e| format!("session key file {}: {e}", path.display()))?;
                        parse(&text).ok_or_else(|| format!("session key file {}: expected 64 hex digits", path.display()))
                    }
                }
            }
            Err(e) => Err(format!("session key file {}: {e}", path.display())),
        }
    }

    /// The MAC of a session of `credential` that expires at `expires` (Unix seconds).
    fn sign(&self, credential: &TokenConfig, expires: i64) -> Vec<u8> {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else { return Vec::new() };
        for part in [
            "vs1",
            credential.name.as_str(),
            &expires.to_string(),
            &credential.sha256.to_ascii_lowercase(),
            credential.role.name(),
            credential.org_id.as_deref().unwrap_or(""),
            credential.expires.as_deref().unwrap_or(""),
        ] {
            // Each part with its length, so that no two credentials sign alike.
            mac.update(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_le_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().to_vec()
    }

    /// Whether `tag` is the MAC of that session, compared in constant time.
    fn verify(&self, credential: &TokenConfig, expires: i64, tag: &[u8]) -> bool {
        let want = self.sign(credential, expires);
        want.len() == tag.len() && want.iter().zip(tag).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
    }
}

/// The token table, and the sessions ended early in this run.
pub struct Auth {
    path: Option<PathBuf>,
    tokens: RwLock<Tokens>,
    key: SessionKey,
    /// Session tokens whose credential changed while this server ran: they
    /// stay ended even if the credential is set back.
    ended: RwLock<HashSet<String>>,
    /// Tokens of this run that no config file holds.
    own: Vec<TokenConfig>,
}

fn unauthenticated(why: impl Into<String>) -> Status {
    Status::unauthenticated(why.into())
}

fn modified(path: &Option<PathBuf>) -> Option<SystemTime> {
    path.as_ref().and_then(|p| std::fs::metadata(p).ok()).and_then(|m| m.modified().ok())
}

impl Auth {
    /// `path` is the config file the tokens came from, re-read when it changes;
    /// sessions are signed with a key of this run.
    pub fn new(config: &Config, path: Option<PathBuf>) -> Auth {
        Self::with_own(config, path, Vec::new(), SessionKey::random())
    }

    /// Also accepts `own` tokens (the first run's one-off token), whatever the
    /// config file says, and signs sessions with `key`.
    pub fn with_own(config: &Config, path: Option<PathBuf>, own: Vec<TokenConfig>, key: SessionKey) -> Auth {
        let m = modified(&path);
        let all: Vec<TokenConfig> = config.tokens.iter().chain(&own).cloned().collect();
        Auth { path, tokens: RwLock::new(Tokens::new(&all, m)), key, ended: RwLock::new(HashSet::new()), own }
    }

    /// Re-reads the tokens when the config file changed. A file that no longer
    /// parses keeps the tokens in force and is logged, so a typo does not lock everyone out.
    fn reload_if_changed(&self) {
        let due = self.tokens.read().map(|t| t.checked.elapsed() >= RELOAD_EVERY).unwrap_or(false);
        if !due || self.path.is_none() {
            return;
        }
        let Ok(mut tokens) = self.tokens.write() else { return };
        tokens.checked = Instant::now();
        let now = modified(&self.path);
        if now == tokens.modified {
            return;
        }
        let Some(path) = &self.path else { return };
        match Config::load(path) {
            Ok(config) => {
                tracing::info!(tokens = config.tokens.len(), "config file changed: tokens reloaded");
                let all: Vec<TokenConfig> = config.tokens.iter().chain(&self.own).cloned().collect();
                *tokens = Tokens::new(&all, now);
            }
            Err(e) => {
                tracing::error!("config file changed but cannot be read, keeping the tokens in force: {e}");
                tokens.modified = now;
            }
        }
    }

    fn principal(token: &TokenConfig) -> Result<Principal, Status> {
        if let Ok(Some(expires)) = token.expires_micros() {
            if chrono::Utc::now().timestamp_micros() >= expires {
                return Err(unauthenticated(format!("token '{}' has expired", token.name)));
            }
        }
        Ok(Principal { name: token.name.clone(), role: token.role, org_id: token.org_id.clone() })
    }

    fn by_name(&self, name: &str) -> Option<TokenConfig> {
        let tokens = self.tokens.read().ok()?;
        tokens.by_hash.values().find(|t| t.name == name).cloned()
    }

    /// Checks an `authorization` header value: `Bearer <token>` (a configured
    /// token or a handshake's session token) or `Basic <base64 name:secret>`.
    pub fn authenticate(&self, header: Option<&[u8]>) -> Result<Principal, Status> {
        self.reload_if_changed();
        let Some(raw) = header else {
            return Err(unauthenticated("missing authorization header: send `authorization: Bearer <token>` or Basic credentials"));
        };
        let text = std::str::from_utf8(raw).map_err(|_| unauthenticated("malformed authorization header: not text"))?;
        let Some((scheme, value)) = text.trim().split_once(' ') else {
            return Err(unauthenticated("malformed authorization header: expected `Bearer <token>` or `Basic <credentials>`"));
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(unauthenticated("malformed authorization header: empty credentials"));
        }
        match scheme.to_ascii_lowercase().as_str() {
            "bearer" => {
                let hash = hash_secret(value);
                let found = self.tokens.read().ok().and_then(|t| t.by_hash.get(&hash).cloned());
                if let Some(token) = found {
                    return Self::principal(&token);
                }
                if value.starts_with("vs1.") {
                    return self.check_session(value);
                }
                Err(unauthenticated("unknown token"))
            }
            "basic" => {
                // Some clients (the Go Flight client among them) leave out the padding.
                let lenient = base64::engine::GeneralPurpose::new(
                    &base64::alphabet::STANDARD,
                    base64::engine::GeneralPurposeConfig::new().with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
                );
                let decoded = lenient
                    .decode(value)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| unauthenticated("malformed Basic credentials: not base64 of name:secret"))?;
                let (name, secret) = decoded.split_once(':').ok_or_else(|| unauthenticated("malformed Basic credentials: no ':' between name and secret"))?;
                match self.by_name(name) {
                    Some(token) if token.sha256.eq_ignore_ascii_case(&hash_secret(secret)) => Self::principal(&token),
                    _ => Err(unauthenticated("wrong name or secret")),
                }
            }
            other => Err(unauthenticated(format!("unsupported authorization scheme '{other}': use Bearer or Basic"))),
        }
    }

    /// A session token (`vs1.NAME.EXPIRES.MAC`): valid while it has not
    /// expired and its credential is configured as it was when it was signed.
    fn check_session(&self, value: &str) -> Result<Principal, Status> {
        let malformed = || unauthenticated("malformed session token: authenticate again");
        let mut parts = value.split('.');
        let (Some(_), Some(name), Some(expires), Some(tag), None) = (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(malformed());
        };
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let name = b64.decode(name).ok().and_then(|n| String::from_utf8(n).ok()).ok_or_else(malformed)?;
        let expires: i64 = expires.parse().map_err(|_| malformed())?;
        let tag = b64.decode(tag).map_err(|_| malformed())?;
        if self.ended.read().map(|e| e.contains(value)).unwrap_or(false) {
            return Err(unauthenticated("the token this session came from has changed: authenticate again"));
        }
        let Some(credential) = self.by_name(&name) else {
            return Err(unauthenticated("the token this session came from has been removed"));
        };
        if !self.key.verify(&credential, expires, &tag) {
            // Signed for the credential as it was (or not by this server's key).
            // Bounded: anyone can send tokens that fail here, and past the
            // bound a changed credential still ends its sessions (only a
            // credential set back would revive them).
            if let Ok(mut e) = self.ended.write() {
                if e.len() < MAX_ENDED {
                    e.insert(value.to_string());
                }
            }
            return Err(unauthenticated("the token this session came from has changed, or the session was not signed by this server: authenticate again"));
        }
        if chrono::Utc::now().timestamp() >= expires {
            return Err(unauthenticated("session token has expired: authenticate again"));
        }
        Self::principal(&credential)
    }

    /// A new session token for a principal (the answer to a Basic handshake),
    /// bound to the credential as it is now.
    pub fn open_session(&self, principal: &Principal) -> Result<String, Status> {
        let credential = self.by_name(&principal.name).ok_or_else(|| unauthenticated("the token has been removed"))?;
        let ttl = i64::try_from(SESSION_TTL.as_secs()).unwrap_or(i64::MAX);
        let expires = chrono::Utc::now().timestamp().saturating_add(ttl);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        Ok(format!("vs1.{}.{expires}.{}", b64.encode(&credential.name), b64.encode(self.key.sign(&credential, expires))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        let mut config = Config::default();
        config.tokens = vec![
            TokenConfig { name: "ann".into(), role: Role::Analyst, sha256: hash_secret("s3cret"), org_id: None, expires: None },
            TokenConfig { name: "old".into(), role: Role::Admin, sha256: hash_secret("gone"), org_id: None, expires: Some("2001-01-01".into()) },
        ];
        Auth::new(&config, None)
    }

    fn code(r: Result<Principal, Status>) -> tonic::Code {
        r.map_or_else(|s| s.code(), |_| tonic::Code::Ok)
    }

    #[test]
    fn headers_are_checked() {
        let a = auth();
        assert_eq!(a.authenticate(Some(b"Bearer s3cret")).map(|p| p.name).ok().as_deref(), Some("ann"));
        assert_eq!(code(a.authenticate(None)), tonic::Code::Unauthenticated);
        assert_eq!(code(a.authenticate(Some(b"Bearer"))), tonic::Code::Unauthenticated);
        assert_eq!(code(a.authenticate(Some(b"Token s3cret"))), tonic::Code::Unauthenticated);
        assert_eq!(code(a.authenticate(Some(b"Bearer wrong"))), tonic::Code::Unauthenticated);
        assert_eq!(code(a.authenticate(Some(b"Bearer gone"))), tonic::Code::Unauthenticated);
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("ann:s3cret"));
        let p = a.authenticate(Some(basic.as_bytes())).expect("basic");
        let unpadded = format!("Basic {}", base64::engine::general_purpose::STANDARD_NO_PAD.encode("ann:s3cret"));
        assert_eq!(a.authenticate(Some(unpadded.as_bytes())).ok(), Some(p.clone()));
        let bad = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("ann:nope"));
        assert_eq!(code(a.authenticate(Some(bad.as_bytes()))), tonic::Code::Unauthenticated);
        let session = a.open_session(&p).expect("session");
        assert_eq!(a.authenticate(Some(format!("Bearer {session}").as_bytes())).ok(), Some(p));
    }

    #[test]
    fn a_session_is_checked_by_its_signature() {
        let mut config = Config::default();
        config.tokens = vec![TokenConfig { name: "ann".into(), role: Role::Analyst, sha256: hash_secret("s3cret"), org_id: None, expires: None }];
        let key = SessionKey::random();
        let a = Auth::with_own(&config, None, Vec::new(), key.clone());
        let p = a.authenticate(Some(b"Bearer s3cret")).expect("bearer");
        let session = a.open_session(&p).expect("session");
        // Another server with the same key (a restart) accepts it; one with another key does not.
        let again = Auth::with_own(&config, None, Vec::new(), key.clone());
        assert_eq!(again.authenticate(Some(format!("Bearer {session}").as_bytes())).ok(), Some(p.clone()));
        let other = Auth::with_own(&config, None, Vec::new(), SessionKey::random());
        assert_eq!(code(other.authenticate(Some(format!("Bearer {session}").as_bytes()))), tonic::Code::Unauthenticated);
        // A later expiry, another name or a changed MAC is refused.
        let parts: Vec<&str> = session.split('.').collect();
        let later: i64 = parts[2].parse::<i64>().expect("expiry") + 3600;
        let forged = [
            format!("vs1.{}.{later}.{}", parts[1], parts[3]),
            format!("vs1.{}.{}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("root"), parts[2], parts[3]),
            // The MAC's last character changed (to one it is not).
            format!("vs1.{}.{}.{}{}", parts[1], parts[2], &parts[3][..parts[3].len() - 1], if parts[3].ends_with('A') { 'B' } else { 'A' }),
            format!("{session}.x"),
            "vs1.%%%.1.2".to_string(),
        ];
        for f in forged {
            assert_eq!(code(again.authenticate(Some(format!("Bearer {f}").as_bytes()))), tonic::Code::Unauthenticated, "{f}");
        }
        // An expired one, signed correctly, is refused.
        let credential = config.tokens[0].clone();
        let past = chrono::Utc::now().timestamp() - 1;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let old = format!("vs1.{}.{past}.{}", b64.encode("ann"), b64.encode(key.sign(&credential, past)));
        let refused = again.authenticate(Some(format!("Bearer {old}").as_bytes())).expect_err("expired");
        assert!(refused.message().contains("expired"), "{}", refused.message());
    }

    #[test]
    fn a_session_key_file_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("vitals-key-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("session.key");
        let first = SessionKey::load_or_create(&path).expect("create");
        let second = SessionKey::load_or_create(&path).expect("read");
        assert_eq!(first.0, second.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, "not a key").expect("write");
        assert!(SessionKey::load_or_create(&path).is_err_and(|e| e.contains("64 hex digits")));
        std::fs::remove_dir_all(&dir).expect("clean");
    }

    #[test]
    fn a_session_ends_when_its_credential_changes() {
        let a = auth();
        let p = a.authenticate(Some(b"Bearer s3cret")).expect("bearer");
        let session = format!("Bearer {}", a.open_session(&p).expect("session"));
        assert!(a.authenticate(Some(session.as_bytes())).is_ok());
        let change = |f: &dyn Fn(&mut TokenConfig)| {
            let mut tokens = a.tokens.write().expect("lock");
            let mut t = tokens.by_hash.values().find(|t| t.name == "ann").cloned().expect("ann");
            tokens.by_hash.retain(|_, t| t.name != "ann");
            f(&mut t);
            tokens.by_hash.insert(t.sha256.clone(), t);
        };
        let fresh = |a: &Auth| {
            let p = a.authenticate(Some(b"Bearer s3cret")).expect("bearer");
            format!("Bearer {}", a.open_session(&p).expect("session"))
        };
        // A new role ends the session, and setting it back does not revive it.
        change(&|t| t.role = Role::Admin);
        assert_eq!(code(a.authenticate(Some(session.as_bytes()))), tonic::Code::Unauthenticated);
        change(&|t| t.role = Role::Analyst);
        assert_eq!(code(a.authenticate(Some(session.as_bytes()))), tonic::Code::Unauthenticated);
        let session = fresh(&a);
        change(&|t| t.sha256 = hash_secret("rotated"));
        assert_eq!(code(a.authenticate(Some(session.as_bytes()))), tonic::Code::Unauthenticated);
        change(&|t| t.sha256 = hash_secret("s3cret"));
        let session = fresh(&a);
        change(&|t| t.org_id = Some("org-1".into()));
        assert_eq!(code(a.authenticate(Some(session.as_bytes()))), tonic::Code::Unauthenticated);
    }
}
