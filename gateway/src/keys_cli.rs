//! `berth token-key rotate`: a new token signing key, without downtime.
//! Tokens signed by the old key stay valid until they expire; running
//! servers sharing the data directory sign with the new key once they
//! read it (at once on PostgreSQL, which tells them; within 30 seconds
//! otherwise).

use berth_auth::keys::{KeyRing, RETIRED_KEEP};
use berth_storage::changes::Change;
use berth_storage::meta::Meta;

pub async fn rotate(data_dir: &std::path::Path, meta: &Meta) -> Result<String, String> {
    let (old, new) = KeyRing::rotate(data_dir).map_err(|e| e.to_string())?;
    if let Err(e) = meta.announce(&Change::Keys).await {
        eprintln!("warning: running servers could not be told at once ({e}); they read the new key within 30 seconds");
    }
    Ok(format!(
        "tokens are now signed with key {new}; key {old} still verifies the tokens it signed for {} days",
        RETIRED_KEEP.as_secs() / 86_400
    ))
}
