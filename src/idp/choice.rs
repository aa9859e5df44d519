//! Choice-based sign-in (`cognito.choice_based_sign_in`): Cognito's `USER_AUTH` flow, through
//! the configured API. Its answers (SELECT_CHALLENGE with `AvailableChallenges`, EMAIL_OTP,
//! SMS_OTP) are answered with `Cognito::respond`.

use aws_sdk_cognitoidentityprovider::types::{AuthFlowType, ChallengeNameType};

use super::model::enum_token;
use super::{outcome, AuthOutcome, Cognito, IdpError, Timed, UserContext};
use crate::config::AuthFlow;

impl Cognito {
    /// Choice-based sign-in (AuthFlow USER_AUTH, through the configured API): with a password
    /// it is the preferred challenge; without one Cognito answers SELECT_CHALLENGE with the
    /// challenges the pool offers the user, or goes straight to `preferred` (EMAIL_OTP,
    /// SMS_OTP) when it is one of them.
    #[tracing::instrument(skip_all, fields(op))]
    pub async fn start_choice(
        &self,
        username: &str,
        password: Option<&str>,
        preferred: Option<&str>,
        ctx: &UserContext,
    ) -> Result<AuthOutcome, IdpError> {
        let hash = self.secret_hash(username);
        let mut params = vec![("USERNAME", username.to_string())];
        if let Some(h) = hash {
            params.push(("SECRET_HASH", h));
        }
        match (password, preferred) {
            (Some(p), _) => {
                params.push(("PASSWORD", p.to_string()));
                params.push(("PREFERRED_CHALLENGE", "PASSWORD".into()));
            }
            (None, Some(c)) => params.push(("PREFERRED_CHALLENGE", c.to_string())),
            (None, None) => {}
        }
        let (mut outcome, available) = match self.flow {
            AuthFlow::AdminUserPassword => {
                tracing::Span::current().record("op", "AdminInitiateAuth");
                let mut req = self
                    .client
                    .admin_initiate_auth()
                    .user_pool_id(&self.pool_id)
                    .client_id(&self.client_id)
                    .auth_flow(AuthFlowType::UserAuth)
                    .set_context_data(self.context_data(ctx));
                for (k, v) in &params {
                    req = req.auth_parameters(*k, v);
                }
                let out = req.send().timed(&self.metrics, "AdminInitiateAuth").await?;
                (
                    outcome_of!(out),
                    challenge_names(out.available_challenges()),
                )
            }
            AuthFlow::UserPassword => {
                tracing::Span::current().record("op", "InitiateAuth");
                let mut req = self
                    .client
                    .initiate_auth()
                    .client_id(&self.client_id)
                    .auth_flow(AuthFlowType::UserAuth)
                    .set_user_context_data(self.user_context_data(ctx));
                for (k, v) in &params {
                    req = req.auth_parameters(*k, v);
                }
                let out = req.send().timed(&self.metrics, "InitiateAuth").await?;
                (
                    outcome_of!(out),
                    challenge_names(out.available_challenges()),
                )
            }
        };
        if let AuthOutcome::Challenge { hints, .. } = &mut outcome {
            hints.available_challenges = available;
        }
        Ok(outcome)
    }
}

/// Cognito's `AvailableChallenges`, as names (`None` when it gave none).
fn challenge_names(list: &[ChallengeNameType]) -> Option<Vec<String>> {
    (!list.is_empty()).then(|| list.iter().map(|c| enum_token(c.as_str())).collect())
}
