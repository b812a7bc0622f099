//! Who is calling: x509 client certificates signed by the client CA (CN is the user, each O a
//! group), static bearer tokens from `--token-auth-file` and service-account tokens
//! (`crate::serviceaccount`), tried in that order as upstream authenticates them; then
//! [`impersonation`] lets the caller act as someone else.

pub mod impersonation;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::serviceaccount::TokenAuthenticator;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    /// What else the authenticator vouches for (a service account's pod, node and token ID,
    /// under `authentication.kubernetes.io/...`), for TokenReview, SelfSubjectReview and
    /// the authorizers.
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

/// The user a TLS connection's verified client certificate names, set per connection.
#[derive(Debug, Clone, Default)]
pub struct ConnectionUser(pub Option<UserInfo>);

/// Authenticates requests; holds the parsed token file.
#[derive(Debug, Default)]
pub struct Authenticator {
    tokens: HashMap<String, UserInfo>,
    /// `--anonymous-auth`: a request without credentials is `system:anonymous`, for the
    /// authorizers to judge, instead of a 401.
    anonymous: bool,
    /// Service-account tokens (bound and legacy), tried after the static tokens.
    service_accounts: Option<Arc<TokenAuthenticator>>,
}

/// Who a bearer token authenticates, and for which of the requested audiences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    pub user: UserInfo,
    pub audiences: Vec<String>,
}

/// Upstream's answer to a bearer token no authenticator claims.
const INVALID_TOKEN: &str = "invalid bearer token";

impl UserInfo {
    /// Who a request without credentials is when anonymous requests are enabled.
    pub fn anonymous() -> UserInfo {
        UserInfo {
            name: "system:anonymous".into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
            extra: Default::default(),
        }
    }
}

/// Why `--token-auth-file` cannot be used; each names the file, and the line when one is
/// malformed.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: want token,user,uid[,groups]", path.display())]
    Line { path: PathBuf, line: usize },
}

/// Paths anonymous callers may read, like upstream's `system:public-info-viewer` role.
const PUBLIC_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version"];

impl Authenticator {
    /// Lets requests without credentials through as [`UserInfo::anonymous`].
    pub fn with_anonymous(mut self, anonymous: bool) -> Self {
        self.anonymous = anonymous;
        self
    }

    /// Loads `--token-auth-file`: CSV lines `token,user,uid[,"group1,group2"]`.
    pub fn load(token_file: Option<&Path>) -> Result<Self, TokenFileError> {
        let Some(path) = token_file else {
            return Ok(Authenticator::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut tokens = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            if fields.len() < 3 || fields[0].is_empty() {
                return Err(TokenFileError::Line {
                    path: path.to_path_buf(),
                    line: number + 1,
                });
            }
            let mut groups: Vec<String> = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            groups.push("system:authenticated".into());
            let user = UserInfo {
                name: fields[1].clone(),
                uid: fields[2].clone(),
                groups,
                extra: Default::default(),
            };
            tokens.insert(fields[0].clone(), user);
        }
        Ok(Authenticator {
            tokens,
            ..Authenticator::default()
        })
    }

    /// Accepts service-account tokens too.
    pub fn with_service_accounts(mut self, tokens: Arc<TokenAuthenticator>) -> Self {
        self.service_accounts = Some(tokens);
        self
    }

    /// Authenticates a bearer token for `audiences` (the API audiences when `None`), as
    /// upstream's token union: static tokens (audience-agnostic: for the API audiences the
    /// request shares), then service-account tokens. The error is every authenticator's
    /// complaint, or upstream's `invalid bearer token` when none recognised the token.
    pub async fn authenticate_token(
        &self,
        token: &str,
        audiences: Option<&[String]>,
    ) -> Result<TokenIdentity, String> {
        let api_audiences = self
            .service_accounts
            .as_ref()
            .map(|s| s.api_audiences())
            .unwrap_or_default();
        if let Some(user) = self.tokens.get(token) {
            let shared: Vec<String> = match audiences {
                Some(wanted) => api_audiences
                    .iter()
                    .filter(|a| wanted.contains(a))
                    .cloned()
                    .collect(),
                None => api_audiences.to_vec(),
            };
            if audiences.is_none() || !shared.is_empty() {
                return Ok(TokenIdentity {
                    user: user.clone(),
                    audiences: shared,
                });
            }
        }
        let mut errors = Vec::new();
        if let Some(accounts) = &self.service_accounts {
            match accounts.authenticate(token, audiences).await {
                Ok(Some(found)) => {
                    return Ok(TokenIdentity {
                        user: found.user,
                        audiences: found.audiences,
                    })
                }
                Ok(None) => {}
                Err(error) => errors.push(error),
            }
        }
        Err(match errors.len() {
            0 => INVALID_TOKEN.to_string(),
            1 => errors.remove(0),
            _ => format!("[{}]", errors.join(", ")),
        })
    }

    /// The user a verified client certificate (DER) names.
    pub fn from_certificate(der: &[u8]) -> Option<UserInfo> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let name = subject
            .iter_common_name()
            .next()?
            .as_str()
            .ok()?
            .to_string();
        let mut groups: Vec<String> = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(String::from))
            .collect();
        groups.push("system:authenticated".into());
        Some(UserInfo {
            name,
            uid: String::new(),
            groups,
            extra: Default::default(),
        })
    }

    /// The caller: the verified client certificate's user if there is one (upstream tries
    /// x509 before tokens, so a valid certificate wins over a bad token), else the bearer
    /// token's, else anonymous (`None`).
    async fn identify(&self, credentials: Credentials) -> Result<Option<UserInfo>, ApiError> {
        let token = match credentials {
            Credentials::Certificate(user) => return Ok(Some(user)),
            Credentials::None => return Ok(None),
            Credentials::Malformed => return Err(ApiError::Unauthorized),
            Credentials::Bearer(token) => token,
        };
        match self.authenticate_token(&token, None).await {
            Ok(identity) => Ok(Some(identity.user)),
            Err(reason) => {
                tracing::debug!(%reason, "bearer token refused");
                Err(ApiError::Unauthorized)
            }
        }
    }
}

/// What a request presents, read from it before authentication awaits anything (the
/// request is not `Sync`, so it cannot be held across an await by reference).
enum Credentials {
    Certificate(UserInfo),
    Bearer(String),
    /// An `Authorization` header that is not a bearer token.
    Malformed,
    None,
}

impl Credentials {
    fn of(request: &Request) -> Credentials {
        if let Some(user) = request
            .extensions()
            .get::<ConnectionUser>()
            .and_then(|c| c.0.clone())
        {
            return Credentials::Certificate(user);
        }
        let Some(header) = request.headers().get("authorization") else {
            return Credentials::None;
        };
        header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map_or(Credentials::Malformed, |t| {
                Credentials::Bearer(t.trim().to_string())
            })
    }
}

/// Middleware: attaches the caller's [`UserInfo`] to the request or answers 401.
pub async fn authenticate(
    axum::extract::State(authenticator): axum::extract::State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    match authenticator.identify(Credentials::of(&request)).await {
        Ok(Some(user)) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        // Without anonymous requests, health and version stay readable to anyone (the
        // authorizers see them as anonymous's), as they were before authorization existed.
        Ok(None)
            if authenticator.anonymous
                || PUBLIC_PATHS
                    .iter()
                    .any(|p| request.uri().path().starts_with(p)) =>
        {
            request.extensions_mut().insert(UserInfo::anonymous());
            next.run(request).await
        }
        Ok(None) | Err(_) => ApiError::Unauthorized.into_response(),
    }
}

/// Splits one CSV line, honouring double quotes (groups are a quoted, comma-separated list).
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields.iter().map(|f| f.trim().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_lines_become_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(&path, "abc,alice,1001,\"dev,ops\"\nxyz,bob,1002\n").unwrap();
        let authenticator = Authenticator::load(Some(&path)).unwrap();
        let alice = &authenticator.tokens["abc"];
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.groups, ["dev", "ops", "system:authenticated"]);
        assert_eq!(authenticator.tokens["xyz"].groups, ["system:authenticated"]);
    }

    #[test]
    fn malformed_token_lines_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(&path, "# users\nonly-a-token\n").unwrap();
        let error = Authenticator::load(Some(&path)).unwrap_err();
        assert!(matches!(error, TokenFileError::Line { line: 2, .. }));
        assert_eq!(
            error.to_string(),
            format!("{}:2: want token,user,uid[,groups]", path.display())
        );
    }
}
