use super::*;
use http_body_util::BodyExt;

/// Every step × every Cognito error, written out: the columns follow
/// `tests_support::all_idp_errors()` (NotAuthorized, UserNotFound, ResourceNotFound,
/// CodeMismatch, ExpiredCode, EnableSoftwareTokenMFA, InvalidPassword,
/// PasswordResetRequired, UserNotConfirmed, InvalidParameter, LimitExceeded,
/// TooManyFailedAttempts, CodeDeliveryFailure, Throttled, Unavailable, BadResponse,
/// UnsupportedOperation, Unexpected). ForgotPassword's row is what `from_idp` says; `auth.rs` answers its
/// user-revealing refusals 200 before (tested there).
#[test]
fn step_by_error_matrix() {
    const CRED: &str = "invalid_credentials";
    const SESS: &str = "invalid_session";
    const CODE: &str = "invalid_code";
    const EXP: &str = "expired_code";
    const WEAK: &str = "weak_password";
    const TOK: &str = "token_invalid";
    const NA: &str = "not_authorized";
    const IDP: &str = "idp_error";
    const RT: &str = "invalid_refresh_token";
    // The columns from PasswordResetRequired on are the same in every row but where noted.
    const TAIL: [&str; 11] = [
        "password_reset_required",
        "user_not_confirmed",
        "invalid_request",
        "attempt_limit_exceeded",
        "too_many_failed_attempts",
        "code_delivery_failed",
        "idp_throttled",
        "idp_unavailable",
        IDP,
        IDP,
        IDP,
    ];
    let head: [(Step, [&str; 7]); 11] = [
        (Step::Login, [CRED, CRED, IDP, CODE, EXP, CODE, CRED]),
        (
            Step::NewPassword,
            [SESS, SESS, SESS, SESS, SESS, CODE, WEAK],
        ),
        (Step::MfaAnswer, [SESS, SESS, SESS, CODE, EXP, CODE, CRED]),
        (
            Step::MfaAssociate,
            [SESS, SESS, SESS, CODE, EXP, CODE, CRED],
        ),
        (Step::MfaVerify, [SESS, SESS, SESS, CODE, EXP, CODE, CRED]),
        (Step::Refresh, [RT, RT, IDP, CODE, EXP, CODE, RT]),
        (Step::Logout, [TOK, TOK, IDP, CODE, EXP, CODE, TOK]),
        (Step::Revoke, [RT, RT, IDP, CODE, EXP, CODE, RT]),
        (Step::ForgotPassword, [NA, NA, IDP, CODE, EXP, CODE, WEAK]),
        (
            Step::ConfirmForgotPassword,
            [CODE, CODE, CODE, CODE, EXP, CODE, WEAK],
        ),
        (
            Step::ChangePassword,
            [CRED, TOK, IDP, CODE, EXP, CODE, WEAK],
        ),
    ];
    assert_eq!(head.map(|(s, _)| s), Step::ALL, "every step, in order");
    let errors = tests_support::all_idp_errors();
    let status_of = |code: &str| match code {
        CRED | SESS | TOK | NA | RT => 401,
        CODE | EXP | WEAK | "invalid_request" => 400,
        "password_reset_required" | "user_not_confirmed" => 403,
        "attempt_limit_exceeded" | "too_many_failed_attempts" | "idp_throttled" => 429,
        "code_delivery_failed" | IDP => 502,
        "revocation_not_enabled" => 501,
        "idp_unavailable" => 503,
        other => panic!("no status for {other}"),
    };
    for (step, first) in head {
        let mut row: Vec<&str> = first.iter().chain(TAIL.iter()).copied().collect();
        if step == Step::Revoke {
            // UnsupportedOperation: the app client has no token revocation.
            row[16] = "revocation_not_enabled";
        }
        assert_eq!(row.len(), errors.len());
        for (e, want) in errors.iter().zip(row) {
            let got = ApiError::from_idp(step, e.clone());
            assert_eq!(
                (got.code.as_str(), got.status.as_u16()),
                (want, status_of(want)),
                "{step:?} × {e:?}"
            );
            // A sign-in or MFA step never says weak_password, and never tells an unknown
            // user from a wrong secret.
            if matches!(
                step,
                Step::Login | Step::MfaAnswer | Step::MfaAssociate | Step::MfaVerify
            ) {
                assert_ne!(got.code, WEAK, "{step:?} × {e:?}");
            }
        }
        let unknown = ApiError::from_idp(step, IdpError::UserNotFound);
        let refused = ApiError::from_idp(step, IdpError::NotAuthorized);
        if step != Step::ChangePassword {
            assert_eq!(unknown, refused, "{step:?}: unknown user == refused");
        }
    }
    // Retry-After on every 429.
    for e in [
        IdpError::LimitExceeded,
        IdpError::TooManyFailedAttempts,
        IdpError::Throttled,
    ] {
        let resp = ApiError::from(e).into_response();
        assert!(resp.headers().contains_key(RETRY_AFTER));
    }
}

/// Every code and its status, written out (by status, as the book's Errors table, docs/src/auth-api.md).
#[test]
fn every_code_and_its_status() {
    let by_status: &[(u16, &[&str])] = &[
        (302, &["sign_in_required"]),
        (
            400,
            &[
                "body_incomplete",
                "expired_code",
                "invalid_body",
                "invalid_code",
                "invalid_field",
                "invalid_header",
                "invalid_host",
                "invalid_json",
                "invalid_method",
                "invalid_path",
                "invalid_request",
                "missing_field",
                "original_request_invalid",
                "unsupported_challenge",
                "untrusted_proxy",
                "weak_password",
            ],
        ),
        (
            401,
            &[
                "alg_not_allowed",
                "bad_signature",
                "claim_missing",
                "invalid_credentials",
                "invalid_refresh_token",
                "invalid_scheme",
                "invalid_session",
                "kid_missing",
                "kid_unknown",
                "multiple_authorization",
                "not_authorized",
                "token_expired",
                "token_invalid",
                "token_issued_in_future",
                "token_malformed",
                "token_missing",
                "token_not_yet_valid",
                "token_revoked",
                "token_too_large",
                "wrong_client",
                "wrong_issuer",
                "wrong_token_use",
            ],
        ),
        (
            403,
            &[
                "claim_not_allowed",
                "csrf_rejected",
                "insufficient_scope",
                "password_reset_required",
                "user_not_confirmed",
                "wrong_pool",
            ],
        ),
        (404, &["not_found"]),
        (405, &["method_not_allowed"]),
        (413, &["payload_too_large"]),
        (415, &["unsupported_media_type"]),
        (
            429,
            &[
                "attempt_limit_exceeded",
                "idp_throttled",
                "rate_limited",
                "too_many_failed_attempts",
            ],
        ),
        (500, &["internal_error"]),
        (501, &["revocation_not_enabled"]),
        (
            502,
            &["code_delivery_failed", "idp_error", "upstream_unavailable"],
        ),
        (
            503,
            &[
                "idp_unavailable",
                "keys_unavailable",
                "not_ready",
                "too_many_tunnels",
            ],
        ),
        (504, &["upstream_timeout"]),
    ];
    let want: std::collections::BTreeMap<&str, u16> = by_status
        .iter()
        .flat_map(|(s, codes)| codes.iter().map(move |c| (*c, *s)))
        .collect();
    let got: std::collections::BTreeMap<&str, u16> = ErrorCode::ALL
        .iter()
        .map(|c| (c.as_str(), c.status().as_u16()))
        .collect();
    assert_eq!(got.len(), ErrorCode::ALL.len(), "as_str is unique");
    assert_eq!(got, want);
    for &c in ErrorCode::ALL {
        assert!(
            c.as_str().split('_').count() > 1
                && c.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{c:?}: snake_case"
        );
        assert!(!c.message().is_empty(), "{c:?}");
        // Today's rule: a 5xx is ours or a neighbour's, anything else the client's.
        assert_eq!(
            c.fault() == Fault::Ours,
            c.status().is_server_error(),
            "{c:?}"
        );
        let e = ApiError::from(c);
        assert_eq!(
            (e.code, e.status, e.is_client_fault()),
            (c, c.status(), c.fault() == Fault::Client)
        );
        // A 401 that refuses a token says so in its challenge; nothing else has one but the
        // 403s of a route's requirements (RFC 6750 insufficient_scope).
        if let Some(ch) = c.challenge() {
            assert!(
                c.status() == StatusCode::UNAUTHORIZED
                    || c == ErrorCode::InsufficientScope
                    || c == ErrorCode::ClaimNotAllowed
                    || c == ErrorCode::WrongPool,
                "{c:?}"
            );
            assert!(ch.starts_with("Bearer"), "{c:?}");
        }
    }
    // Every gate refusal but a missing token and unloaded keys is `invalid_token`.
    for v in all_verify_errors() {
        let c = ErrorCode::from(v);
        let want = match v {
            VerifyError::Missing => Some("Bearer"),
            VerifyError::NotReady => None,
            _ => Some("Bearer error=\"invalid_token\""),
        };
        assert_eq!(c.challenge(), want, "{v:?}");
    }
}

/// One of each `VerifyError` (the match fails to compile when a variant is added).
fn all_verify_errors() -> Vec<VerifyError> {
    use VerifyError as V;
    let all = vec![
        V::Missing,
        V::Scheme,
        V::Multiple,
        V::TooLarge,
        V::Malformed,
        V::Algorithm,
        V::KidMissing,
        V::KidUnknown,
        V::Signature,
        V::Issuer,
        V::TokenUse,
        V::Client,
        V::Expired,
        V::NotYetValid,
        V::IssuedInFuture,
        V::ClaimMissing,
        V::Revoked,
        V::NotReady,
    ];
    for v in &all {
        match v {
            V::Missing
            | V::Scheme
            | V::Multiple
            | V::TooLarge
            | V::Malformed
            | V::Algorithm
            | V::KidMissing
            | V::KidUnknown
            | V::Signature
            | V::Issuer
            | V::TokenUse
            | V::Client
            | V::Expired
            | V::NotYetValid
            | V::IssuedInFuture
            | V::ClaimMissing
            | V::Revoked
            | V::NotReady => {}
        }
    }
    all
}

/// A token refusal tells the client what the gate says of it (its description is the
/// message), each with its own code.
#[test]
fn gate_refusals_say_what_the_gate_says() {
    let all = all_verify_errors();
    let codes: std::collections::BTreeSet<ErrorCode> =
        all.iter().map(|v| ErrorCode::from(*v)).collect();
    assert_eq!(codes.len(), all.len(), "one code each");
    for v in all {
        let e = ApiError::from(v);
        if !matches!(v, VerifyError::Missing | VerifyError::NotReady) {
            assert_eq!(e.message, v.to_string(), "{v:?}");
        }
    }
}

/// Every `rate_limited` says which budget, and when to retry (rounded up, at least 1 s).
#[test]
fn rate_limited_names_the_budget() {
    let budgets = [
        Budget::Address,
        Budget::Username,
        Budget::RecoveryAddress,
        Budget::RecoveryUsername,
    ];
    let messages: std::collections::BTreeSet<&str> = budgets.iter().map(|b| b.message()).collect();
    assert_eq!(messages.len(), budgets.len());
    for (wait, header) in [(0, "1"), (1_500, "2"), (3_000, "3")] {
        let e = ApiError::rate_limited(Budget::Address, Duration::from_millis(wait));
        assert_eq!((e.code, e.status.as_u16()), (ErrorCode::RateLimited, 429));
        let resp = e.into_response();
        assert_eq!(resp.headers()[RETRY_AFTER], header, "{wait} ms");
    }
}

#[tokio::test]
async fn renders_json_and_headers() {
    let cases = [
        (
            ApiError::token_missing(),
            401,
            "token_missing",
            Some("Bearer"),
            None,
        ),
        (
            ApiError::from(VerifyError::Expired),
            401,
            "token_expired",
            Some("Bearer error=\"invalid_token\""),
            None,
        ),
        (
            ApiError::insufficient_scope(),
            403,
            "insufficient_scope",
            Some("Bearer error=\"insufficient_scope\""),
            None,
        ),
        (
            ApiError::method_not_allowed("POST"),
            405,
            "method_not_allowed",
            None,
            Some("POST"),
        ),
        (
            ApiError::from(IdpError::Throttled),
            429,
            "idp_throttled",
            None,
            None,
        ),
        (
            ApiError::from(IdpError::Unavailable),
            503,
            "idp_unavailable",
            None,
            None,
        ),
        (
            ApiError::from(IdpError::BadResponse),
            502,
            "idp_error",
            None,
            None,
        ),
        (
            ApiError::from(ProxyError::Timeout),
            504,
            "upstream_timeout",
            None,
            None,
        ),
        (
            ApiError::from(ProxyError::TooManyTunnels),
            503,
            "too_many_tunnels",
            None,
            None,
        ),
        (
            ApiError::from(VerifyError::NotReady),
            503,
            "keys_unavailable",
            None,
            None,
        ),
    ];
    for (err, status, code, challenge, allow) in cases {
        let resp = err.into_response();
        assert_eq!(resp.status().as_u16(), status, "{code}");
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(
            resp.headers()
                .get(WWW_AUTHENTICATE)
                .map(|v| v.to_str().expect("ascii")),
            challenge
        );
        assert_eq!(
            resp.headers()
                .get(ALLOW)
                .map(|v| v.to_str().expect("ascii")),
            allow
        );
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["code"], code);
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}
