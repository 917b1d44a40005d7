//! The BGP-4 wire format: encode and decode `message` values (RFC 4271, 4760, 5492, 6793, 1997, 8092, 2918, 4724).
