//! The endpoints that end sessions: `/logout` (GlobalSignOut: every session of the user) and
//! `/revoke` (RevokeToken: one session). Both refuse the ended tokens at every gate.

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::gate::verify;
use crate::idp::Step;

use super::body::field;
use super::{json, Answer, AuthApi};

impl AuthApi {
    /// RevokeToken for one refresh token (this client's session only, unlike `/logout`); with
    /// the session's (possibly expired) access or id token as `Authorization: Bearer`, the
    /// gates refuse that session's tokens too.
    pub(super) async fn revoke(
        &self,
        body: &Map<String, Value>,
        headers: &http::HeaderMap,
    ) -> Result<Answer, ApiError> {
        let refresh_token = field(body, "refresh_token")?;
        let claims = match verify::bearer(headers, self.max_token_bytes) {
            Ok(token) => Some(self.gate.verify_ignoring_expiry(token).await?),
            Err(verify::VerifyError::Missing) => None,
            Err(e) => return Err(e.into()),
        };
        if let Err(e) = self.idp.revoke_token(refresh_token).await {
            return Err(ApiError::from_idp(Step::Revoke, e));
        }
        if let Some(revocation) = claims.as_ref().and_then(|c| self.gate.revoke_session(c)) {
            if let Some(shared) = &self.shared {
                shared.publish(revocation);
            }
        }
        Ok((
            json(StatusCode::OK, &serde_json::json!({ "ok": true })),
            claims.map(|c| c.sub),
        ))
    }

    pub(super) async fn logout(&self, req: Request<Incoming>) -> Result<Answer, ApiError> {
        let token = verify::bearer(req.headers(), self.max_token_bytes)?;
        // Always as an access token: GlobalSignOut takes nothing else, even when the gate
        // accepts only id tokens (`verify.token_use = ["id"]`).
        let claims = self.gate.check_access(token).await?;
        if let Err(e) = self.idp.global_sign_out(token).await {
            return Err(ApiError::from_idp(Step::Logout, e));
        }
        let revocation = self.gate.revoke(&claims);
        if let Some(shared) = &self.shared {
            shared.publish(revocation);
        }
        Ok((
            json(StatusCode::OK, &serde_json::json!({ "ok": true })),
            Some(claims.sub),
        ))
    }
}
