//! Rules for what only decryption shows: CredSSP error codes, Early User Authorization,
//! RDSTLS results (filled in with TLS decryption).

use super::{Ctx, Decision};

/// Decides from decrypted facts, when there are any.
pub(super) fn decide(_cx: &mut Ctx<'_>) -> Option<Decision> {
    None
}
