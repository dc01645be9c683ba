//! `KeyRing::verify` on arbitrary bytes (lossily decoded as UTF-8; valid
//! UTF-8 reaches the verifier unchanged). Never panics, and whatever it
//! accepts (only the signed seeds can be) satisfies the ring's policy.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_fuzz::{LEEWAY_SECS, RING, check_accepted_claims};

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    if let Ok(claims) = RING.verify(&token) {
        check_accepted_claims(&RING, &claims, LEEWAY_SECS);
    }
});
