//! Who is calling: Bearer tokens and Basic credentials checked against the
//! `[[tokens]]` of the config file (stored as SHA-256 hashes, re-read when the
//! file changes, so a removed token stops working without a restart), and the
//! session tokens a Flight handshake hands out. Knows nothing of SQL.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
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

/// The token table and the live session tokens.
pub struct Auth {
    path: Option<PathBuf>,
    tokens: RwLock<Tokens>,
    /// Session tokens: the credential each came from, as it was then, and when it expires.
    sessions: RwLock<HashMap<String, (TokenConfig, Instant)>>,
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
    /// `path` is the config file the tokens came from, re-read when it changes.
    pub fn new(config: &Config, path: Option<PathBuf>) -> Auth {
        Self::with_own(config, path, Vec::new())
    }

    /// Also accepts `own` tokens (the first run's one-off token), whatever the config file says.
    pub fn with_own(config: &Config, path: Option<PathBuf>, own: Vec<TokenConfig>) -> Auth {
        let m = modified(&path);
        let all: Vec<TokenConfig> = config.tokens.iter().chain(&own).cloned().collect();
        Auth { path, tokens: RwLock::new(Tokens::new(&all, m)), sessions: RwLock::new(HashMap::new()), own }
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
                let session = self.sessions.read().ok().and_then(|s| s.get(value).cloned());
                match session {
                    Some((_, expires)) if Instant::now() >= expires => Err(unauthenticated("session token has expired: authenticate again")),
                    // The credential it came from must still be configured, unchanged:
                    // a rotated secret, a new role or account, or a removed token ends the session.
                    Some((was, _)) => match self.by_name(&was.name) {
                        Some(token) if token == was => Self::principal(&token),
                        changed => {
                            // Ended for good, even if the credential is later set back.
                            if let Ok(mut s) = self.sessions.write() {
                                s.remove(value);
                            }
                            Err(unauthenticated(if changed.is_some() {
                                "the token this session came from has changed: authenticate again"
                            } else {
                                "the token this session came from has been removed"
                            }))
                        }
                    },
                    None => Err(unauthenticated("unknown token")),
                }
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

    /// A new session token for a principal (the answer to a Basic handshake),
    /// bound to the credential as it is now.
    pub fn open_session(&self, principal: &Principal) -> Result<String, Status> {
        let credential = self.by_name(&principal.name).ok_or_else(|| unauthenticated("the token has been removed"))?;
        let token = format!("vs_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        if let Ok(mut s) = self.sessions.write() {
            let now = Instant::now();
            s.retain(|_, (_, exp)| *exp > now);
            s.insert(token.clone(), (credential, now + SESSION_TTL));
        }
        Ok(token)
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
