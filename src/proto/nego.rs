//! RDP negotiation structures carried in X.224 CR/CC (MS-RDPBCGR 2.2.1.1.1, 2.2.1.2.1, 2.2.1.2.2).

use std::fmt;

use serde::Serialize;

/// `requestedProtocols` / `selectedProtocol` flags (MS-RDPBCGR 2.2.1.1.1). Unknown bits are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct Protocols(pub u32);

impl Protocols {
    /// PROTOCOL_SSL: TLS.
    pub const SSL: u32 = 0x01;
    /// PROTOCOL_HYBRID: CredSSP (NLA).
    pub const HYBRID: u32 = 0x02;
    /// PROTOCOL_RDSTLS.
    pub const RDSTLS: u32 = 0x04;
    /// PROTOCOL_HYBRID_EX: CredSSP with Early User Authorization Result PDU.
    pub const HYBRID_EX: u32 = 0x08;
    /// PROTOCOL_RDSAAD: RDS Azure AD authentication.
    pub const RDSAAD: u32 = 0x10;
    const NAMES: [(u32, &'static str); 5] = [
        (Self::SSL, "SSL"),
        (Self::HYBRID, "HYBRID"),
        (Self::RDSTLS, "RDSTLS"),
        (Self::HYBRID_EX, "HYBRID_EX"),
        (Self::RDSAAD, "RDSAAD"),
    ];

    /// PROTOCOL_RDP is the empty set: Standard RDP Security only.
    pub fn is_standard_rdp(self) -> bool {
        self.0 == 0
    }

    /// Whether any TLS-based protocol (everything but Standard RDP Security) is set.
    pub fn uses_tls(self) -> bool {
        self.0 != 0
    }

    /// Whether CredSSP (NLA) is part of the set.
    pub fn uses_credssp(self) -> bool {
        self.0 & (Self::HYBRID | Self::HYBRID_EX) != 0
    }

    /// `SSL|HYBRID|HYBRID_EX`, `RDP` for the empty set, `0x40` for unknown bits.
    pub fn names(self) -> String {
        if self.0 == 0 {
            return "RDP".to_string();
        }
        let mut parts: Vec<String> = Vec::new();
        let mut rest = self.0;
        for (bit, name) in Self::NAMES {
            if self.0 & bit != 0 {
                parts.push(name.to_string());
                rest &= !bit;
            }
        }
        if rest != 0 {
            parts.push(format!("{rest:#x}"));
        }
        parts.join("|")
    }
}

impl fmt::Display for Protocols {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({:#x})", self.names(), self.0)
    }
}

/// RDP_NEG_REQ flags (MS-RDPBCGR 2.2.1.1.1).
pub mod req_flags {
    /// RESTRICTED_ADMIN_MODE_REQUIRED.
    pub const RESTRICTED_ADMIN_MODE_REQUIRED: u8 = 0x01;
    /// REDIRECTED_AUTHENTICATION_MODE_REQUIRED (Remote Credential Guard).
    pub const REDIRECTED_AUTHENTICATION_MODE_REQUIRED: u8 = 0x02;
    /// CORRELATION_INFO_PRESENT.
    pub const CORRELATION_INFO_PRESENT: u8 = 0x08;
    /// Names of the set bits.
    pub fn names(flags: u8) -> Vec<&'static str> {
        let mut v = Vec::new();
        if flags & RESTRICTED_ADMIN_MODE_REQUIRED != 0 {
            v.push("restricted_admin_mode_required");
        }
        if flags & REDIRECTED_AUTHENTICATION_MODE_REQUIRED != 0 {
            v.push("redirected_authentication_mode_required");
        }
        if flags & CORRELATION_INFO_PRESENT != 0 {
            v.push("correlation_info_present");
        }
        v
    }
}

/// RDP_NEG_RSP flags (MS-RDPBCGR 2.2.1.2.1).
pub mod rsp_flags {
    /// Names of the set bits.
    pub fn names(flags: u8) -> Vec<&'static str> {
        const N: [(u8, &str); 5] = [
            (0x01, "extended_client_data_supported"),
            (0x02, "dynvc_gfx_protocol_supported"),
            (0x04, "negrsp_flag_reserved"),
            (0x08, "restricted_admin_mode_supported"),
            (0x10, "redirected_authentication_mode_supported"),
        ];
        N.iter()
            .filter(|(b, _)| flags & b != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

/// RDP_NEG_FAILURE failureCode (MS-RDPBCGR 2.2.1.2.2). Unknown values survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FailureCode(pub u32);

impl FailureCode {
    /// SSL_REQUIRED_BY_SERVER.
    pub const SSL_REQUIRED_BY_SERVER: FailureCode = FailureCode(1);
    /// SSL_NOT_ALLOWED_BY_SERVER.
    pub const SSL_NOT_ALLOWED_BY_SERVER: FailureCode = FailureCode(2);
    /// SSL_CERT_NOT_ON_SERVER.
    pub const SSL_CERT_NOT_ON_SERVER: FailureCode = FailureCode(3);
    /// INCONSISTENT_FLAGS.
    pub const INCONSISTENT_FLAGS: FailureCode = FailureCode(4);
    /// HYBRID_REQUIRED_BY_SERVER.
    pub const HYBRID_REQUIRED_BY_SERVER: FailureCode = FailureCode(5);
    /// SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER.
    pub const SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER: FailureCode = FailureCode(6);

    /// The spec name, or `None` for an unknown code.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "SSL_REQUIRED_BY_SERVER",
            2 => "SSL_NOT_ALLOWED_BY_SERVER",
            3 => "SSL_CERT_NOT_ON_SERVER",
            4 => "INCONSISTENT_FLAGS",
            5 => "HYBRID_REQUIRED_BY_SERVER",
            6 => "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER",
            _ => return None,
        })
    }
}

impl fmt::Display for FailureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "UNKNOWN_FAILURE_{:#x}", self.0),
        }
    }
}

/// RDP_NEG_REQ (MS-RDPBCGR 2.2.1.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegReq {
    /// Flags (RESTRICTED_ADMIN_MODE_REQUIRED ...).
    pub flags: u8,
    /// Security protocols the client supports.
    pub requested: Protocols,
}

/// The negotiation part of an X.224 Connection Confirm (MS-RDPBCGR 2.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NegResult {
    /// RDP_NEG_RSP: the server selected a protocol.
    Response {
        /// Flags (EXTENDED_CLIENT_DATA_SUPPORTED ...).
        flags: u8,
        /// The selected security protocol.
        selected: Protocols,
    },
    /// RDP_NEG_FAILURE: the server refused the requested protocols.
    Failure(FailureCode),
}

/// Type byte of RDP_NEG_REQ.
pub const TYPE_RDP_NEG_REQ: u8 = 0x01;
/// Type byte of RDP_NEG_RSP.
pub const TYPE_RDP_NEG_RSP: u8 = 0x02;
/// Type byte of RDP_NEG_FAILURE.
pub const TYPE_RDP_NEG_FAILURE: u8 = 0x03;
/// Type byte of RDP_NEG_CORRELATION_INFO.
pub const TYPE_RDP_CORRELATION_INFO: u8 = 0x06;

/// Reads the 8-byte negotiation structure shared by REQ, RSP and FAILURE:
/// `(type, flags, value)`; `None` if fewer than 8 bytes or the length field is not 8.
pub fn parse_neg_struct(i: &[u8]) -> Option<(u8, u8, u32)> {
    let b: &[u8; 8] = i.get(..8)?.try_into().ok()?;
    let len = u16::from_le_bytes([b[2], b[3]]);
    if len != 8 {
        return None;
    }
    Some((b[0], b[1], u32::from_le_bytes([b[4], b[5], b[6], b[7]])))
}

/// Parses the negotiation data of a Connection Confirm (`None` if absent or malformed).
pub fn parse_neg_result(i: &[u8]) -> Option<NegResult> {
    let (ty, flags, value) = parse_neg_struct(i)?;
    match ty {
        TYPE_RDP_NEG_RSP => Some(NegResult::Response {
            flags,
            selected: Protocols(value),
        }),
        TYPE_RDP_NEG_FAILURE => Some(NegResult::Failure(FailureCode(value))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_names() {
        assert_eq!(Protocols(0).names(), "RDP");
        assert!(Protocols(0).is_standard_rdp());
        assert_eq!(Protocols(0xb).names(), "SSL|HYBRID|HYBRID_EX");
        assert_eq!(Protocols(0x10).to_string(), "RDSAAD(0x10)");
        assert_eq!(Protocols(0x41).names(), "SSL|0x40");
    }

    #[test]
    fn neg_failure_from_wireshark_rdp_capture() {
        // rdp-no-nla-rejected1.pcapng: CC carries RDP_NEG_FAILURE HYBRID_REQUIRED_BY_SERVER.
        let b = [0x03, 0x00, 0x08, 0x00, 0x05, 0x00, 0x00, 0x00];
        assert_eq!(
            parse_neg_result(&b),
            Some(NegResult::Failure(FailureCode(5)))
        );
        assert_eq!(FailureCode(5).to_string(), "HYBRID_REQUIRED_BY_SERVER");
        assert_eq!(FailureCode(9).to_string(), "UNKNOWN_FAILURE_0x9");
        assert_eq!(parse_neg_result(&b[..7]), None);
    }

    /// Arbitrary bytes (and bytes opening like a real PDU): no panic, framing within bounds.
    mod arbitrary_bytes {
        use super::*;
        use proptest::prelude::*;

        fn bytes() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..400),
                (
                    prop::sample::select(vec![
                        &[1u8, 0, 8, 0][..],
                        &[2, 0, 8, 0],
                        &[3, 0, 8, 0],
                        &[2, 0x1f, 8, 0]
                    ]),
                    prop::collection::vec(any::<u8>(), 0..400)
                )
                    .prop_map(|(head, mut v)| {
                        let mut h: Vec<u8> = head.to_vec();
                        h.append(&mut v);
                        h
                    }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]
            #[test]
            fn no_panic_and_bounded(i in bytes()) {
                let _ = parse_neg_result(&i);
                let _ = parse_neg_struct(&i);
            }
        }
    }
}
