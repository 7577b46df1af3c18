//! Fuzzes the `calculate-locate` validation as the gateway runs it: the
//! shared parser (`pricing::parse_locate_request`), the validation filter's
//! body verdict, and the filter's streaming state machine fed the same body
//! in arbitrary chunks. No input may panic, and chunking must not change
//! the answer.
#![no_main]

use filter_core::host::RecordingHost;
use filter_core::validation::{
    validate_locate_body, BodyVerdict, Flow, RequestValidation, ValidationConfig,
};
use libfuzzer_sys::fuzz_target;
use pricing::MAX_BODY_BYTES;

fuzz_target!(|data: &[u8]| {
    // First byte picks the chunk size; the rest is the body.
    let (chunk, body) = match data.split_first() {
        Some((c, rest)) => (usize::from(*c).max(1), rest),
        None => (1, data),
    };

    let direct = pricing::parse_locate_request(body);
    if let Ok(request) = &direct {
        // Whatever is accepted satisfies SPEC §4.
        let days = request.loan_days.get();
        assert!((1..=365).contains(&days));
        assert!(request.position_value.value() > pricing::Decimal::ZERO);
        assert!(request.position_value.value().normalize().scale() <= 2);
        assert!(!request.client_id.as_str().is_empty() && request.client_id.as_str().len() <= 64);
        assert_eq!(
            request.ticker.as_str(),
            request.ticker.as_str().to_ascii_uppercase()
        );
    }
    if let Err(errors) = &direct {
        assert!(!errors.is_empty(), "a rejection names at least one field");
    }

    let verdict = validate_locate_body(body, MAX_BODY_BYTES);
    match (&verdict, &direct) {
        (BodyVerdict::Valid, Ok(_))
        | (BodyVerdict::Invalid(_), Err(_))
        | (BodyVerdict::TooLarge, _) => {}
        (v, d) => panic!("filter verdict {v:?} disagrees with the service parser {d:?}"),
    }

    // The streaming filter, fed `chunk` bytes per callback.
    let host = RecordingHost::with_headers(&[
        (":method", "POST"),
        (":path", "/api/v1/calculate-locate"),
        ("content-type", "application/json"),
        ("x-request-id", "fuzz"),
    ]);
    let mut v = RequestValidation::new(ValidationConfig::default());
    let mut flow = v.on_request_headers(&host, body.is_empty());
    let mut sent = 0;
    while !body.is_empty() && sent < body.len() && host.replies.borrow().is_empty() {
        sent = (sent + chunk).min(body.len());
        *host.body.borrow_mut() = body[..sent].to_vec();
        flow = v.on_request_body(&host, sent, sent == body.len());
    }
    let replies = host.replies.borrow();
    match verdict {
        BodyVerdict::Valid => {
            assert_eq!(flow, Flow::Continue);
            assert!(replies.is_empty());
        }
        BodyVerdict::TooLarge => assert_eq!(replies.first().map(|r| r.0), Some(413)),
        BodyVerdict::Invalid(_) => {
            assert_eq!(replies.len(), 1);
            assert_eq!(replies[0].0, 400);
            assert!(replies[0].2.contains(r#""code":"VALIDATION_ERROR""#));
        }
    }
});
