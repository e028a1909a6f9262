//! Bearer tokens for hosts and clients.

use switchboard_api::ApiError;
use switchboard_api::TOKEN_TTL_MAX_SECS;
use switchboard_api::TokenRole;
use switchboard_api::convert;
use switchboard_proto::v1 as pb;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::AdminApi;

impl AdminApi {
    pub(super) async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let role = match pb::TokenRole::try_from(message.role) {
            Ok(pb::TokenRole::Host) => {
                convert::host_id(&message.subject)?;
                TokenRole::Host
            }
            Ok(pb::TokenRole::Client) => {
                switchboard_raft_store::ids::RelayId::new(message.subject.clone()).map_err(
                    |_| {
                        ApiError::InvalidArgument(
                            "a client name is one DNS label (a-z, 0-9, '-')".into(),
                        )
                    },
                )?;
                TokenRole::Client
            }
            _ => {
                return Err(ApiError::InvalidArgument("role must be host or client".into()).into());
            }
        };
        if message.ttl_secs == 0 || message.ttl_secs > TOKEN_TTL_MAX_SECS {
            return Err(ApiError::InvalidArgument(format!(
                "ttl_secs must be 1 to {TOKEN_TTL_MAX_SECS}"
            ))
            .into());
        }
        let (token, expires_at_ms) =
            self.site
                .auth
                .issue_token(role, &message.subject, message.ttl_secs)?;
        Ok(Response::new(pb::IssueTokenResponse {
            token,
            expires_at_unix_ms: expires_at_ms,
        }))
    }
}
