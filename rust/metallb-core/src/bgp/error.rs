//! Why bytes are not a BGP message, as the NOTIFICATION that says so.
