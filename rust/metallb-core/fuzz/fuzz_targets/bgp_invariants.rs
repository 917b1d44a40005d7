//! The property the `bgp_decode` fuzz target checks. Shared (through `#[path]`) with
//! `tests/bgp_codec_fuzz_regressions.rs`, which replays the seeds and past crashers on every `cargo test`.
#![allow(dead_code)]

use metallb_core::bgp::{decode, encode, encoded_len, frame_len, CodecOptions, EncodeError, ErrorAction, Message};

/// Any bytes as a BGP stream. The first byte picks the session (odd: 4-octet AS), the rest is read message by
/// message as a session would: decoding never panics; each accepted message re-encodes to bytes that decode to
/// the same message; each error maps to a NOTIFICATION, and one that keeps the session says how far to skip.
pub fn bgp_decode(data: &[u8]) {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let opts = CodecOptions { four_octet_as: mode & 1 == 1 };
    for _ in 0..16 {
        match decode(rest, &opts) {
            Ok(None) => {
                assert!(frame_len(rest).is_ok(), "a header error was reported as 'wait for more'");
                return;
            }
            Ok(Some((msg, used))) => {
                assert!((19..=rest.len().min(4096)).contains(&used), "consumed {used} of {}", rest.len());
                assert_eq!(frame_len(rest), Ok(Some(used)));
                reencodes(&msg, &opts);
                rest = &rest[used..];
            }
            Err(e) => {
                let notification = e.notification();
                assert!((1..=7).contains(&notification.code), "{e}: code {}", notification.code);
                assert!(!e.to_string().is_empty());
                match (e.action(), e.message_len) {
                    (ErrorAction::ResetSession, _) => return,
                    (_, Some(len)) if (19..=rest.len()).contains(&len) => rest = &rest[len..],
                    (action, len) => panic!("{e}: action {action:?} with message length {len:?}"),
                }
            }
        }
    }
}

fn reencodes(msg: &Message, opts: &CodecOptions) {
    let mut out = Vec::new();
    match encode(msg, opts, &mut out) {
        Ok(()) => {}
        // Re-encoding an UPDATE may grow it past 4096: ORIGIN and AS_PATH are written when other attributes
        // are, and a merged AS4_PATH carries the whole path. Nothing else may fail.
        Err(EncodeError::TooLong { .. }) if matches!(msg, Message::Update(_)) => {
            assert!(out.is_empty(), "a refused message left bytes behind");
            return;
        }
        Err(e) => panic!("a decoded message does not encode: {e}\n{msg:?}"),
    }
    assert_eq!(out.len(), encoded_len(msg, opts));
    assert_eq!(decode(&out, opts), Ok(Some((msg.clone(), out.len()))), "re-encoded as {out:02x?}");
}
