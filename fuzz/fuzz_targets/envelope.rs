//! `Envelope::decode` on arbitrary bytes: an envelope or an error, never a
//! panic; and whatever decodes encodes back to bytes that decode the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use oxray_proto::Envelope;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::decode(data) {
        let again = Envelope::decode(env.encode_to_vec().as_slice())
            .expect("an envelope's own encoding decodes");
        assert_eq!(again, env);
    }
});
