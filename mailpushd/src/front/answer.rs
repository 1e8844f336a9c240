//! The front's answers to the push extensions' commands, through the same service
//! core as the HTTP API: `XAPPLEPUSHSERVICE` exactly as the xaps plugin answers it,
//! the WEBPUSH family as `/imap/webpush` does.

use imap_webpush_proto::state::ConnectionId;
use xaps_proto::UserName;
use xaps_proto::daemon::Register;

use crate::core::{ConnectionEnds, Core, RegisterError};
use crate::metrics::Metrics;

/// `XAPPLEPUSHSERVICE`, whole, from `user`: registered, then the plugin's two lines.
pub(super) async fn xaps(
    core: &Core,
    metrics: &Metrics,
    user: &UserName,
    tag: &str,
    command: &[u8],
) -> Vec<u8> {
    let parsed = match xaps_proto::Command::decode(command) {
        Ok((_, parsed)) => parsed,
        Err(failure) => {
            metrics.front_command("xapplepushservice", "bad");
            return failure
                .response()
                .filter(|r| !r.starts_with('+'))
                .unwrap_or_else(|| {
                    format!("{tag} BAD Error in IMAP command XAPPLEPUSHSERVICE.\r\n")
                })
                .into_bytes();
        }
    };
    let request = parsed.request;
    let account = request.account_id.clone();
    let register = Register {
        account_id: request.account_id,
        device_token: request.device_token,
        username: user.clone(),
        mailboxes: request.mailboxes,
    };
    match core.register(register).await {
        Ok(_) => {
            let topic = core.apns().topic().as_str();
            match xaps_proto::registered_response(request.version, topic) {
                Ok(mut reply) => {
                    metrics.front_command("xapplepushservice", "registered");
                    reply.extend(xaps_proto::completed(&parsed.tag));
                    reply
                }
                Err(e) => {
                    tracing::error!(error = %e, "IMAP front: the APNs topic cannot be written in a response");
                    metrics.front_command("xapplepushservice", "failed");
                    format!("{tag} NO [SERVERBUG] The push topic cannot be sent.\r\n").into_bytes()
                }
            }
        }
        Err(RegisterError::Refused(reason)) => {
            tracing::info!(?user, account = ?account.as_str(), %reason, "IMAP front: registration refused");
            metrics.front_command("xapplepushservice", "refused");
            format!("{tag} NO [LIMIT] {reason}.\r\n").into_bytes()
        }
        Err(e) => {
            tracing::error!(error = %e, ?user, "IMAP front: registration not stored");
            metrics.front_command("xapplepushservice", "failed");
            format!("{tag} NO [UNAVAILABLE] The registration cannot be stored now.\r\n")
                .into_bytes()
        }
    }
}

/// One of the WEBPUSH family, whole, from `user` on `connection`.
pub(super) async fn webpush(
    core: &Core,
    metrics: &Metrics,
    user: &UserName,
    connection: ConnectionId,
    tag: &str,
    command: &[u8],
) -> Vec<u8> {
    match core
        .webpush_command(user, connection, ConnectionEnds::Seen, command)
        .await
    {
        Ok(lines) => {
            metrics.front_command("webpush", "answered");
            lines
        }
        Err(e) => {
            metrics.front_command("webpush", "bad");
            // The reason comes from the client's own octets: escaped as a log does.
            let reason = format!("{e}").escape_debug().to_string();
            format!("{tag} BAD {reason}\r\n").into_bytes()
        }
    }
}
