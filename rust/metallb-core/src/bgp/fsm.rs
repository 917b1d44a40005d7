//! The BGP session state machine (RFC 4271 section 8) as a pure function of events and time.
