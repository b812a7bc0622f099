//! Impersonation (`kubectl --as`, `--as-group`, `--as-uid`): the `Impersonate-User`,
//! `Impersonate-Group`, `Impersonate-Uid` and `Impersonate-Extra-<key>` headers ask for a
//! request to run as someone else. As upstream's impersonation filter does, each thing asked
//! for is authorized for the authenticated caller with the verb `impersonate`: the user (or
//! the service account a `system:serviceaccount:<ns>:<name>` user is), each group, the UID
//! and each extra value. Once all are allowed the impersonated user replaces the caller for
//! everything after (authorization, the reviews, `kubectl auth whoami`), and the headers are
//! dropped so nothing downstream honours them a second time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::UserInfo;
use crate::authz::{Attributes, Chain, ResourceAttributes};
use crate::error::ApiError;
use crate::registry::validation::{is_dns1123_label, is_dns1123_subdomain};

const USER_HEADER: &str = "impersonate-user";
const GROUP_HEADER: &str = "impersonate-group";
const UID_HEADER: &str = "impersonate-uid";
/// Followed by the extra's key, percent-encoded (header names cannot hold `/`).
const EXTRA_PREFIX: &str = "impersonate-extra-";

const AUTHENTICATED: &str = "system:authenticated";
const UNAUTHENTICATED: &str = "system:unauthenticated";
const ANONYMOUS: &str = "system:anonymous";

/// The API group of the `uids` and `userextras` that are impersonated; users, groups and
/// service accounts are core.
const AUTHENTICATION_GROUP: &str = "authentication.k8s.io";

/// One thing a request asks to impersonate; each is authorized on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requested {
    User(String),
    /// A user named like a service account: authorized on the service account, and given
    /// its groups unless groups are asked for too.
    ServiceAccount {
        namespace: String,
        name: String,
    },
    Group(String),
    Extra {
        key: String,
        value: String,
    },
    Uid(String),
}

/// Groups, a UID or extras asked for without a user to give them to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("requested [{}] without impersonating a user", .0.join(" "))]
pub struct WithoutUser(Vec<String>);

impl Requested {
    /// The `impersonate` request the caller must be allowed.
    fn attributes(&self, requestor: &UserInfo) -> Attributes {
        let (namespace, group, resource, subresource, name) = match self {
            Requested::User(name) => ("", "", "users", "", name),
            Requested::ServiceAccount { namespace, name } => {
                (namespace.as_str(), "", "serviceaccounts", "", name)
            }
            Requested::Group(name) => ("", "", "groups", "", name),
            Requested::Extra { key, value } => {
                ("", AUTHENTICATION_GROUP, "userextras", key.as_str(), value)
            }
            Requested::Uid(uid) => ("", AUTHENTICATION_GROUP, "uids", "", uid),
        };
        Attributes {
            user: requestor.clone(),
            verb: "impersonate".into(),
            resource: Some(ResourceAttributes {
                namespace: namespace.into(),
                group: group.into(),
                version: if group.is_empty() { "" } else { "v1" }.into(),
                resource: resource.into(),
                subresource: subresource.into(),
                name: name.clone(),
                ..Default::default()
            }),
            path: String::new(),
        }
    }

    /// How upstream prints the request in its "without a user" error: Go's `%v` of the
    /// `ObjectReference` it builds (kind, namespace, name, UID, API version, resource
    /// version, field path, space-separated), e.g. `{Group  devs    }`.
    fn reference(&self) -> String {
        const V1: &str = "authentication.k8s.io/v1";
        let (kind, namespace, name, api_version, field_path) = match self {
            Requested::User(name) => ("User", "", name.as_str(), "", ""),
            Requested::ServiceAccount { namespace, name } => {
                ("ServiceAccount", namespace.as_str(), name.as_str(), "", "")
            }
            Requested::Group(name) => ("Group", "", name.as_str(), "", ""),
            Requested::Extra { key, value } => ("UserExtra", "", value.as_str(), V1, key.as_str()),
            Requested::Uid(uid) => ("UID", "", uid.as_str(), V1, ""),
        };
        format!("{{{kind} {namespace} {name}  {api_version}  {field_path}}}")
    }
}

/// What the impersonation headers ask for, in upstream's order: the user, the groups, the
/// extras, the UID. Empty when they ask for nothing (an empty `Impersonate-User` is none).
fn requested(headers: &HeaderMap) -> Result<Vec<Requested>, WithoutUser> {
    // Header values are bytes; names and groups in UTF-8 are taken as they are.
    let text = |value: &HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
    let single = |name: &str| headers.get(name).map(text).filter(|v| !v.is_empty());
    let mut all = Vec::new();
    let user = single(USER_HEADER);
    if let Some(user) = &user {
        all.push(match service_account(user) {
            Some((namespace, name)) => Requested::ServiceAccount {
                namespace: namespace.into(),
                name: name.into(),
            },
            None => Requested::User(user.clone()),
        });
    }
    all.extend(
        headers
            .get_all(GROUP_HEADER)
            .iter()
            .map(|group| Requested::Group(text(group))),
    );
    for header in headers.keys() {
        let Some(encoded) = header.as_str().strip_prefix(EXTRA_PREFIX) else {
            continue;
        };
        // Header names arrive lower-cased, as upstream lower-cases the key before decoding.
        let key = path_unescape(encoded).unwrap_or_else(|| encoded.to_string());
        all.extend(
            headers
                .get_all(header)
                .iter()
                .map(|value| Requested::Extra {
                    key: key.clone(),
                    value: text(value),
                }),
        );
    }
    if let Some(uid) = single(UID_HEADER) {
        all.push(Requested::Uid(uid));
    }
    if user.is_none() && !all.is_empty() {
        return Err(WithoutUser(all.iter().map(Requested::reference).collect()));
    }
    Ok(all)
}

/// The namespace and name of a user named `system:serviceaccount:<ns>:<name>` whose parts
/// are valid names, as upstream's `SplitUsername` (anything else is an ordinary user).
fn service_account(user: &str) -> Option<(&str, &str)> {
    machinery::serviceaccount::split_username(user)
        .filter(|(namespace, name)| is_dns1123_label(namespace) && is_dns1123_subdomain(name))
}

/// The user the request runs as once everything `requested` is allowed. Requested groups
/// are the whole list (a service account gets its own only when none are asked for);
/// `system:authenticated` is added unless the list already says authenticated or not, and
/// `system:anonymous` gets `system:unauthenticated` instead.
fn impersonated(requested: Vec<Requested>) -> UserInfo {
    let groups_asked = requested.iter().any(|r| matches!(r, Requested::Group(_)));
    let mut user = UserInfo {
        name: String::new(),
        uid: String::new(),
        groups: Vec::new(),
        extra: Default::default(),
    };
    for part in requested {
        match part {
            Requested::User(name) => user.name = name,
            Requested::ServiceAccount { namespace, name } => {
                user.name = machinery::serviceaccount::username(&namespace, &name);
                if !groups_asked {
                    user.groups = machinery::serviceaccount::groups(&namespace).to_vec();
                }
            }
            Requested::Group(group) => user.groups.push(group),
            Requested::Extra { key, value } => user.extra.entry(key).or_default().push(value),
            Requested::Uid(uid) => user.uid = uid,
        }
    }
    let has = |group: &str| user.groups.iter().any(|g| g == group);
    if user.name == ANONYMOUS {
        if !has(UNAUTHENTICATED) {
            user.groups.push(UNAUTHENTICATED.into());
        }
    } else if !has(AUTHENTICATED) && !has(UNAUTHENTICATED) {
        user.groups.push(AUTHENTICATED.into());
    }
    user
}

/// Who `requestor` acts as: `None` when the headers impersonate no one, the impersonated
/// user when `authorize` allows every part of it, and the first refusal otherwise.
fn acting_as(
    requested: Vec<Requested>,
    requestor: &UserInfo,
    authorize: impl Fn(&Attributes) -> Result<(), ApiError>,
) -> Result<Option<UserInfo>, ApiError> {
    if requested.is_empty() {
        return Ok(None);
    }
    for part in &requested {
        authorize(&part.attributes(requestor))?;
    }
    Ok(Some(impersonated(requested)))
}

/// Drops every `Impersonate-*` header once the impersonation is decided.
fn remove_headers(headers: &mut HeaderMap) {
    let extras: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(EXTRA_PREFIX))
        .cloned()
        .collect();
    for name in [USER_HEADER, GROUP_HEADER, UID_HEADER] {
        headers.remove(name);
    }
    for name in extras {
        headers.remove(name);
    }
}

/// Upstream's answer to impersonation headers it cannot make sense of (groups without a
/// user): in v1.33 its plain-text internal error rather than a `Status`, `Internal Server
/// Error: "<request URI>": <why>`, with `&`, `<` and `>` escaped so it never reads as HTML.
fn internal_error(uri: &Uri, error: &WithoutUser) -> Response {
    // The request URI as the client sent it: path and query (Go's `%q` of it, which for a
    // URI, always printable ASCII, quotes as Rust's `{:?}` does).
    let target = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let text = format!("Internal Server Error: {target:?}: {error}\n")
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [
            (CONTENT_TYPE, "text/plain; charset=utf-8"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        text,
    )
        .into_response()
}

/// Middleware, after authentication: replaces the caller's [`UserInfo`] with the one the
/// `Impersonate-*` headers ask for if the authorizers let the caller impersonate it, and
/// answers upstream's 403 for the first part they do not.
pub async fn impersonate(
    State(chain): State<Arc<Chain>>,
    mut request: Request,
    next: Next,
) -> Response {
    let requested = match requested(request.headers()) {
        Ok(requested) if requested.is_empty() => return next.run(request).await,
        Ok(requested) => requested,
        Err(error) => {
            tracing::debug!(%error, "impersonation refused");
            return internal_error(request.uri(), &error);
        }
    };
    let Some(requestor) = request.extensions().get::<UserInfo>() else {
        return ApiError::Unauthorized.into_response();
    };
    match acting_as(requested, requestor, |attributes| chain.check(attributes)) {
        Ok(Some(user)) => {
            tracing::debug!(
                requestor = %requestor.name,
                user = %user.name,
                groups = ?user.groups,
                "impersonating"
            );
            remove_headers(request.headers_mut());
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        Ok(None) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// Go's `url.PathUnescape`: every `%XX` decoded; `None` for a malformed escape (or bytes
/// that are not UTF-8), where upstream keeps the key as it was sent.
fn path_unescape(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Target;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            extra: Default::default(),
        }
    }

    fn resource(attributes: &Attributes) -> (&str, &str, &str, &str, &str, &str) {
        let r = attributes.resource.as_ref().unwrap();
        (
            r.namespace.as_str(),
            r.group.as_str(),
            r.version.as_str(),
            r.resource.as_str(),
            r.subresource.as_str(),
            r.name.as_str(),
        )
    }

    #[test]
    fn headers_become_requests_in_upstreams_order() {
        let requested = requested(&headers(&[
            ("impersonate-uid", "1234"),
            ("impersonate-extra-scopes", "view"),
            ("impersonate-extra-scopes", "edit"),
            ("impersonate-group", "devs"),
            ("impersonate-user", "jane"),
            ("impersonate-group", "ops"),
            ("Impersonate-Extra-Example.com%2FTeam", "blue"),
            ("impersonate-extra-almost%zzencoded", "x"),
        ]))
        .unwrap();
        let extra = |key: &str, value: &str| Requested::Extra {
            key: key.into(),
            value: value.into(),
        };
        assert_eq!(
            requested,
            [
                Requested::User("jane".into()),
                Requested::Group("devs".into()),
                Requested::Group("ops".into()),
                extra("scopes", "view"),
                extra("scopes", "edit"),
                extra("example.com/team", "blue"),
                extra("almost%zzencoded", "x"),
                Requested::Uid("1234".into()),
            ]
        );
    }

    #[test]
    fn service_account_users_are_service_accounts() {
        let parse = |name: &str| requested(&headers(&[("impersonate-user", name)])).unwrap();
        assert_eq!(
            parse("system:serviceaccount:kube-system:builder"),
            [Requested::ServiceAccount {
                namespace: "kube-system".into(),
                name: "builder".into()
            }]
        );
        for name in [
            "system:serviceaccount:Team:builder",
            "system:serviceaccount:team:",
            "system:serviceaccount:a:b:c",
        ] {
            assert_eq!(parse(name), [Requested::User(name.into())], "{name}");
        }
    }

    #[test]
    fn no_headers_or_an_empty_user_ask_for_nothing() {
        assert_eq!(requested(&HeaderMap::new()), Ok(Vec::new()));
        assert_eq!(
            requested(&headers(&[
                ("impersonate-user", ""),
                ("impersonate-uid", "")
            ])),
            Ok(Vec::new())
        );
    }

    #[test]
    fn groups_uids_and_extras_need_a_user() {
        let error = requested(&headers(&[
            ("impersonate-group", "system:masters"),
            ("impersonate-group", "devs"),
            ("impersonate-extra-scopes", "view"),
            ("impersonate-uid", "1234"),
        ]))
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "requested [{Group  system:masters    } {Group  devs    } \
             {UserExtra  view  authentication.k8s.io/v1  scopes} \
             {UID  1234  authentication.k8s.io/v1  }] without impersonating a user"
        );
    }

    #[test]
    fn each_part_is_authorized_as_upstream_names_it() {
        let bob = user("bob", &["system:authenticated"]);
        let parts = requested(&headers(&[
            ("impersonate-user", "system:serviceaccount:ci:deployer"),
            ("impersonate-group", "devs"),
            ("impersonate-extra-example.com%2fteam", "blue"),
            ("impersonate-uid", "1234"),
        ]))
        .unwrap();
        let attributes: Vec<Attributes> = parts.iter().map(|p| p.attributes(&bob)).collect();
        assert!(attributes
            .iter()
            .all(|a| a.verb == "impersonate" && a.user == bob));
        let resources: Vec<_> = attributes.iter().map(resource).collect();
        assert_eq!(
            resources,
            [
                ("ci", "", "", "serviceaccounts", "", "deployer"),
                ("", "", "", "groups", "", "devs"),
                (
                    "",
                    "authentication.k8s.io",
                    "v1",
                    "userextras",
                    "example.com/team",
                    "blue"
                ),
                ("", "authentication.k8s.io", "v1", "uids", "", "1234"),
            ]
        );
        let jane = Requested::User("jane".into()).attributes(&bob);
        assert_eq!(resource(&jane), ("", "", "", "users", "", "jane"));
    }

    #[test]
    fn impersonated_users_get_upstreams_groups() {
        let build = |pairs: &[(&str, &str)]| impersonated(requested(&headers(pairs)).unwrap());
        let jane = build(&[("impersonate-user", "jane")]);
        assert_eq!(jane, user("jane", &["system:authenticated"]));
        let jane = build(&[
            ("impersonate-user", "jane"),
            ("impersonate-group", "devs"),
            ("impersonate-uid", "1234"),
            ("impersonate-extra-scopes", "view"),
        ]);
        assert_eq!(jane.groups, ["devs", "system:authenticated"]);
        assert_eq!(jane.uid, "1234");
        assert_eq!(jane.extra["scopes"], ["view"]);
        assert_eq!(
            build(&[("impersonate-user", "system:serviceaccount:ci:deployer")]),
            user(
                "system:serviceaccount:ci:deployer",
                &[
                    "system:serviceaccounts",
                    "system:serviceaccounts:ci",
                    "system:authenticated"
                ]
            )
        );
        // Asked-for groups replace a service account's own.
        let deployer = build(&[
            ("impersonate-user", "system:serviceaccount:ci:deployer"),
            ("impersonate-group", "devs"),
        ]);
        assert_eq!(deployer.groups, ["devs", "system:authenticated"]);
        assert_eq!(
            build(&[("impersonate-user", "system:anonymous")]).groups,
            ["system:unauthenticated"]
        );
        assert_eq!(
            build(&[
                ("impersonate-user", "jane"),
                ("impersonate-group", "system:unauthenticated")
            ])
            .groups,
            ["system:unauthenticated"]
        );
    }

    #[test]
    fn the_first_refusal_is_the_answer() {
        let bob = user("bob", &["system:authenticated"]);
        let parts = requested(&headers(&[
            ("impersonate-user", "jane"),
            ("impersonate-group", "admins"),
        ]))
        .unwrap();
        // Allows users, refuses anything else.
        let users_only = |attributes: &Attributes| match &attributes.resource {
            Some(r) if r.resource == "users" => Ok(()),
            _ => Err(crate::authz::forbidden(attributes, "")),
        };
        let refusal = acting_as(parts.clone(), &bob, users_only).unwrap_err();
        let ApiError::Forbidden { target, reason } = refusal else {
            panic!("{refusal:?}")
        };
        assert_eq!(
            target,
            Target {
                group: String::new(),
                resource: "groups".into(),
                kind: "groups".into(),
                name: "admins".into(),
            }
        );
        assert_eq!(
            reason,
            r#"User "bob" cannot impersonate resource "groups" in API group "" at the cluster scope"#
        );
        let allowed = acting_as(parts, &bob, |_| Ok(())).unwrap().unwrap();
        assert_eq!(allowed, user("jane", &["admins", "system:authenticated"]));
        assert_eq!(acting_as(Vec::new(), &bob, users_only).unwrap(), None);
    }

    #[test]
    fn the_headers_are_removed() {
        let mut map = headers(&[
            ("impersonate-user", "jane"),
            ("impersonate-group", "a"),
            ("impersonate-group", "b"),
            ("impersonate-uid", "1"),
            ("impersonate-extra-scopes", "view"),
            ("impersonate-extra-team", "blue"),
            ("accept", "application/json"),
        ]);
        remove_headers(&mut map);
        assert_eq!(map.len(), 1);
        assert!(map.contains_key("accept"));
    }

    #[tokio::test]
    async fn a_request_without_a_user_gets_upstreams_plain_internal_error() {
        let error = WithoutUser(vec!["{Group  <b>&    }".into()]);
        let response = internal_error(&"/api/v1/pods?limit=1".parse().unwrap(), &error);
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(
            body,
            "Internal Server Error: \"/api/v1/pods?limit=1\": requested [{Group  &lt;b&gt;&amp;    }] without impersonating a user\n"
        );
    }

    #[test]
    fn extra_keys_unescape_like_go() {
        assert_eq!(path_unescape("a%2Fb%e1%9b%84c").as_deref(), Some("a/bᛄc"));
        assert_eq!(path_unescape("plain+key").as_deref(), Some("plain+key"));
        for malformed in ["a%zz", "a%4", "a%", "a%+1", "a%ff"] {
            assert_eq!(path_unescape(malformed), None, "{malformed}");
        }
    }
}
