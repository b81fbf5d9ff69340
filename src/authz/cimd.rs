//! Client ID metadata documents.
use super::store::clients::Client;
use super::AuthServer;

/// The client `client_id` names.
pub(super) async fn client(s: &AuthServer, client_id: &str) -> Result<Client, &'static str> {
    match s.store.client(client_id).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err("unknown_client"),
        Err(_) => Err("state_unavailable"),
    }
}
