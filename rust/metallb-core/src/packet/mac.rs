use std::fmt;
use std::str::FromStr;

use super::PacketError;

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    pub const fn new(a: u8, b: u8, c: u8, d: u8, e: u8, f: u8) -> Self {
        MacAddr([a, b, c, d, e, f])
    }

    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// The group bit (least significant bit of the first octet); broadcast is multicast too.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    pub fn is_zero(&self) -> bool {
        *self == Self::ZERO
    }

    /// An address that can identify one station: neither a group address nor all zeros.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && !self.is_zero()
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(octets: [u8; 6]) -> Self {
        MacAddr(octets)
    }
}

impl From<MacAddr> for [u8; 6] {
    fn from(mac: MacAddr) -> Self {
        mac.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

/// Parses `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` (either case, one separator throughout).
impl FromStr for MacAddr {
    type Err = PacketError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PacketError::BadMacAddr { input: s.to_owned() };
        let bytes = s.as_bytes();
        if bytes.len() != 17 {
            return Err(bad());
        }
        let sep = bytes[2];
        if sep != b':' && sep != b'-' {
            return Err(bad());
        }
        let mut octets = [0u8; 6];
        for (i, octet) in octets.iter_mut().enumerate() {
            let at = i * 3;
            if i > 0 && bytes[at - 1] != sep {
                return Err(bad());
            }
            let hi = hex_digit(bytes[at]).ok_or_else(bad)?;
            let lo = hex_digit(bytes[at + 1]).ok_or_else(bad)?;
            *octet = hi << 4 | lo;
        }
        Ok(MacAddr(octets))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_lowercase_colon_separated() {
        assert_eq!(MacAddr::new(0x02, 0xAB, 0, 0x0c, 0xde, 0xff).to_string(), "02:ab:00:0c:de:ff");
    }

    #[test]
    fn parses_both_separators_and_cases() {
        let want = MacAddr::new(0x02, 0xab, 0, 0x0c, 0xde, 0xff);
        assert_eq!("02:ab:00:0c:de:ff".parse::<MacAddr>(), Ok(want));
        assert_eq!("02-AB-00-0C-DE-FF".parse::<MacAddr>(), Ok(want));
    }

    #[test]
    fn rejects_malformed_text() {
        for input in [
            "",
            "02:ab:00:0c:de",
            "02:ab:00:0c:de:ff:00",
            "02:ab-00:0c:de:ff",
            "2:ab:00:0c:de:ff0",
            "02:ab:00:0c:de:fg",
            "02.ab.00.0c.de.ff",
            "02:ab:00:0c:de:f√",
        ] {
            assert_eq!(input.parse::<MacAddr>(), Err(PacketError::BadMacAddr { input: input.to_owned() }), "{input}");
        }
    }

    #[test]
    fn classifies_addresses() {
        assert!(MacAddr::BROADCAST.is_broadcast() && MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr::new(0x33, 0x33, 0, 0, 0, 1).is_multicast());
        assert!(!MacAddr::ZERO.is_unicast());
        assert!(MacAddr::new(0x02, 0, 0, 0, 0, 1).is_unicast());
    }
}
