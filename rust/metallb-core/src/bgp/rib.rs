//! Adj-RIB-Out: the routes a peer should hold, what it has been sent, and the UPDATEs that close the gap.
